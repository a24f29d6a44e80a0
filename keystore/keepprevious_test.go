package keystore

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// KeepPrevious keeps another backend's key file before it is replaced and
// never overwrites a different key kept earlier.
func TestKeepPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DefaultFileName)
	now := time.Date(2026, 11, 22, 18, 30, 5, 0, time.UTC)

	require.NoError(t, os.WriteFile(path, []byte("key one"), 0o600))
	prev, err := KeepPrevious(path, now)
	require.NoError(t, err)
	assert.Equal(t, path+PreviousSuffix, prev)

	require.NoError(t, os.WriteFile(path, []byte("key two"), 0o600))
	_, err = KeepPrevious(path, now)
	require.NoError(t, err)

	got, err := os.ReadFile(path + PreviousSuffix)
	require.NoError(t, err)
	assert.Equal(t, "key two", string(got))
	kept, err := filepath.Glob(path + PreviousSuffix + "-*")
	require.NoError(t, err)
	require.Len(t, kept, 1, "the earlier kept key moved aside, not overwritten")
	got, err = os.ReadFile(kept[0])
	require.NoError(t, err)
	assert.Equal(t, "key one", string(got))
	cur, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "key two", string(cur), "the key itself stays in place")
	fi, err := os.Stat(path + PreviousSuffix)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	_, err = KeepPrevious(filepath.Join(dir, "missing.pem"), now)
	assert.ErrorContains(t, err, "missing.pem")
}
