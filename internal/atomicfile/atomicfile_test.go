package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name    string
		old     []byte
		data    []byte
		perm    os.FileMode
		wantErr string
	}{
		{name: "new file", data: []byte("secret"), perm: 0o600},
		{name: "replace", old: []byte("old content"), data: []byte("new"), perm: 0o600},
		{name: "public mode", data: []byte("x"), perm: 0o644},
		{name: "empty", data: nil, perm: 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f.pem")
			if tt.old != nil {
				require.NoError(t, os.WriteFile(p, tt.old, 0o644))
			}
			require.NoError(t, WriteFile(p, tt.data, tt.perm))
			got, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, string(tt.data), string(got))
			fi, err := os.Stat(p)
			require.NoError(t, err)
			assert.Equal(t, tt.perm, fi.Mode().Perm())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no temporary file may be left behind")
		})
	}
}

func TestWriteFileRefusesNonRegularTarget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	require.NoError(t, os.Mkdir(p, 0o700))
	err := WriteFile(p, []byte("x"), 0o600)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.True(t, fi.IsDir(), "the directory must be left alone")
}

func TestWriteFileMissingDirKeepsNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "f")
	err := WriteFile(p, []byte("x"), 0o600)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.NoFileExists(t, p)
}

func TestMoveAsideNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "key.pem.aside")
	var got []string
	for _, content := range []string{"first", "second", "third"} {
		p := filepath.Join(dir, "key.pem")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		moved, err := MoveAside(p, dst)
		require.NoError(t, err)
		assert.NoFileExists(t, p)
		data, err := os.ReadFile(moved)
		require.NoError(t, err)
		assert.Equal(t, content, string(data))
		got = append(got, filepath.Base(moved))
	}
	assert.Equal(t, []string{"key.pem.aside", "key.pem.aside-1", "key.pem.aside-2"}, got)
}
