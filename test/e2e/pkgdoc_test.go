package e2e

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryPackageHasOneDoc: every package of the module has exactly one
// package doc comment (a doc.go for multi-file packages), and every
// non-test package's doc says what it must not import, so the
// architecture can be read from the docs.
func TestEveryPackageHasOneDoc(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Dir        string
			Name       string
			GoFiles    []string
		}
		require.NoError(t, dec.Decode(&p))
		if len(p.GoFiles) == 0 {
			continue
		}
		n++
		var docs []string
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			require.NoError(t, err)
			if af.Doc != nil {
				docs = append(docs, f)
			}
		}
		if assert.Len(t, docs, 1, "%s: want exactly one package doc comment, found in %v", p.ImportPath, docs) && p.Name != "main" {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, docs[0]), nil, parser.PackageClauseOnly|parser.ParseComments)
			require.NoError(t, err)
			text := strings.ToLower(af.Doc.Text())
			assert.True(t, strings.Contains(text, "import"), "%s: the package doc must say what the package may (not) import", p.ImportPath)
		}
	}
	assert.Greater(t, n, 20, "go list must have listed the module's packages")
}
