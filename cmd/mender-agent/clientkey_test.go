package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/config"
)

// The trust store asks for the mTLS key whenever the certificate changes
// and on every reload; the key is loaded again only when its file changed.
func TestClientKeyCacheReloadsOnlyChangedKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "client.key")
	require.NoError(t, os.WriteFile(p, pkcs8Ed25519(t), 0o600))
	env := &environment{log: newTestLogger(os.Stderr, newFormatter(func(string) string { return "" }))}
	c := &clientKeyCache{}

	k1, err := c.load(env, config.Security{}, p)
	require.NoError(t, err)
	k2, err := c.load(env, config.Security{}, p)
	require.NoError(t, err)
	assert.Same(t, k1, k2, "an unchanged key file is not loaded again")

	require.NoError(t, os.WriteFile(p, pkcs8Ed25519(t), 0o600))
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(p, future, future))
	k3, err := c.load(env, config.Security{}, p)
	require.NoError(t, err)
	assert.NotEqual(t, k1.Public(), k3.Public(), "a replaced key file is loaded again")

	require.NoError(t, os.Remove(p))
	_, err = c.load(env, config.Security{}, p)
	assert.ErrorContains(t, err, "HttpsClient.Key")
}
