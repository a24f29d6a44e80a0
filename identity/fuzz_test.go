package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"mac=02:12:61:13:6c:42\n", "mac=a\nmac=b\ncpuid=1\n", "a=b=c\r\n\n", "", "x", "=", "k=\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		d, err := Parse(out)
		if err != nil {
			require.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrNoData), "unclassified error: %v", err)
			return
		}
		require.NotEmpty(t, d)
		// id_data is a JSON object whose members match the parsed data.
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(d.JSON()), &obj))
		assert.Len(t, obj, len(d))
		n := 0
		for _, line := range bytes.Split(out, []byte{'\n'}) {
			if len(line) > 0 {
				n++
			}
		}
		total := 0
		for _, vs := range d {
			total += len(vs)
		}
		assert.Equal(t, n, total, "every non-empty line is one value")
	})
}
