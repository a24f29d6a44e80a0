package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func decodeReport(t *testing.T, out string) tokenReport {
	t.Helper()
	var r tokenReport
	i := strings.Index(out, "{")
	require.GreaterOrEqual(t, i, 0, out)
	require.NoError(t, json.Unmarshal([]byte(out[i:]), &r), out)
	return r
}

func jsonField(t *testing.T, out, field string) string {
	t.Helper()
	var m map[string]any
	i := strings.Index(out, "{")
	require.GreaterOrEqual(t, i, 0, out)
	require.NoError(t, json.Unmarshal([]byte(out[i:]), &m), out)
	s, _ := m[field].(string)
	return s
}
