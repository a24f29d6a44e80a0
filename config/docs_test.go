package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocumentedExamples keeps the shipped example and the one in
// docs/configuration.md valid and free of unknown keys.
func TestDocumentedExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "## Example")
	require.True(t, ok, "docs/configuration.md has an Example section")
	_, rest, ok = strings.Cut(rest, "```json\n")
	require.True(t, ok)
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)

	examples := map[string]string{"docs/configuration.md": example}
	if dist, err := os.ReadFile(filepath.Join("..", "dist", "mender.conf.example")); err == nil {
		examples["dist/mender.conf.example"] = string(dist)
	}
	for name, content := range examples {
		t.Run(name, func(t *testing.T) {
			log, hook := test.NewNullLogger()
			log.SetLevel(logrus.TraceLevel)
			_, err := Parse(name, []byte(content), log)
			require.NoError(t, err)
			assert.Empty(t, warnings(hook))
		})
	}

	// Every key of Config is documented.
	keys := documentedKeys(reflect.TypeFor[Config](), "")
	require.Contains(t, keys, "Security.AuthKeyType")
	require.Contains(t, keys, "Servers")
	for _, key := range keys {
		assert.Contains(t, string(doc), "`"+key+"`", "docs/configuration.md documents %s", key)
	}
}

// documentedKeys lists the dotted file keys of a struct type; nested objects
// contribute their fields, arrays only their own name.
func documentedKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := join(prefix, jsonName(f))
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, documentedKeys(f.Type, key)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}
