package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/tpm/tpmtest"
)

func writeConf(t *testing.T, dir string, conf map[string]any) string {
	t.Helper()
	data, err := json.Marshal(conf)
	require.NoError(t, err)
	p := filepath.Join(dir, "mender.conf")
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

func pkcs8Ed25519(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// A static key (Security.AuthPrivateKey) is never generated or replaced,
// but its permissions are enforced like a generated key's.
func TestStaticKeyModeIsFixedNeverReplaced(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "provisioned.pem")
	key := pkcs8Ed25519(t)
	require.NoError(t, os.WriteFile(keyPath, key, 0o644))
	conf := writeConf(t, dir, map[string]any{"Security": map[string]any{"AuthPrivateKey": keyPath}})

	code, out, errOut := runCLI(t, "-c", conf, "-d", filepath.Join(dir, "data"), "bootstrap")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, keyPath)
	assert.Contains(t, errOut, "0600")
	fi, err := os.Stat(keyPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	after, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	assert.Equal(t, key, after)

	// -F never replaces a static key.
	code, _, errOut = runCLI(t, "-c", conf, "-d", filepath.Join(dir, "data"), "bootstrap", "-F")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "static")
	after, err = os.ReadFile(keyPath)
	require.NoError(t, err)
	assert.Equal(t, key, after)

	// A missing static key is an error naming the file, not a new key.
	require.NoError(t, os.Remove(keyPath))
	code, _, errOut = runCLI(t, "-c", conf, "-d", filepath.Join(dir, "data"), "bootstrap")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, keyPath)
	assert.NoFileExists(t, keyPath)
}

// show-key never changes the disk, even for a key it cannot parse.
func TestShowKeyIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o700))
	keyPath := filepath.Join(data, "mender-agent.pem")
	require.NoError(t, os.WriteFile(keyPath, []byte("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"), 0o600))
	conf := writeConf(t, dir, map[string]any{})
	code, _, errOut := runCLI(t, "-c", conf, "-d", data, "show-key")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, keyPath)
	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	require.Len(t, entries, 1, "show-key must not move or create files")
}

// bootstrap -F with the key in a TPM keeps every old key: a second and a
// third rotation never overwrite an earlier kept key, and a read-only
// show-key against a different (cleared) TPM leaves the key in place.
func TestTPMRotationKeepsEveryKey(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	conf := writeConf(t, dir, map[string]any{"Security": map[string]any{
		"AuthKeyBackend": "tpm", "TPMDevice": sw.Device(), "TPMRegenerateOnClear": true,
	}})
	args := []string{"-c", conf, "-d", data}
	fingerprint := func() string {
		code, out, errOut := runCLI(t, append(args, "show-key", "--json")...)
		require.Equal(t, exitOK, code, errOut)
		var info struct{ Fingerprint, Backend string }
		require.NoError(t, json.Unmarshal([]byte(out), &info))
		assert.Equal(t, "tpm", info.Backend)
		return info.Fingerprint
	}
	code, _, errOut := runCLI(t, append(args, "bootstrap")...)
	require.Equal(t, exitOK, code, errOut)
	seen := map[string]bool{fingerprint(): true}
	for i := 0; i < 3; i++ {
		code, _, errOut = runCLI(t, append(args, "bootstrap", "-F")...)
		require.Equal(t, exitOK, code, errOut)
		fp := fingerprint()
		assert.False(t, seen[fp], "rotation %d must make a new key", i+1)
		seen[fp] = true
	}
	kept, err := filepath.Glob(filepath.Join(data, "mender-agent.pem.previous*"))
	require.NoError(t, err)
	assert.Len(t, kept, 3, "every replaced key is kept: %v", kept)
	assert.NoFileExists(t, filepath.Join(data, "mender-agent.pem.new"))

	// Against another TPM the key cannot load; show-key must not move it.
	before, err := os.ReadFile(filepath.Join(data, "mender-agent.pem"))
	require.NoError(t, err)
	other := tpmtest.Start(t)
	conf2 := writeConf(t, t.TempDir(), map[string]any{"Security": map[string]any{
		"AuthKeyBackend": "tpm", "TPMDevice": other.Device(), "TPMRegenerateOnClear": true,
	}})
	code, _, errOut = runCLI(t, "-c", conf2, "-d", data, "show-key")
	assert.Equal(t, exitFailure, code)
	assert.True(t, strings.Contains(errOut, "left in place"), errOut)
	after, err := os.ReadFile(filepath.Join(data, "mender-agent.pem"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

// provision on a factory line creates the key in the TPM without any
// server and prints the identity and the TPM key's public key, the same
// key show-key reports; a second run keeps it.
func TestProvisionIntoTPM(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	require.NoError(t, os.MkdirAll(filepath.Join(share, "identity"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(share, "identity", "mender-device-identity"),
		[]byte("#!/bin/sh\necho mac=02:00:00:00:00:09\n"), 0o755))
	t.Setenv("MENDER_DATA_DIR", share)
	data := filepath.Join(dir, "data")
	conf := writeConf(t, dir, map[string]any{"Security": map[string]any{"AuthKeyBackend": "tpm", "TPMDevice": sw.Device()}})

	provision := func() map[string]any {
		code, out, errOut := runCLI(t, "-c", conf, "-d", data, "provision", "--export", "json")
		require.Equal(t, exitOK, code, errOut)
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &rec), out)
		return rec
	}
	first := provision()
	assert.Equal(t, map[string]any{"mac": "02:00:00:00:00:09"}, first["identity_data"])
	keyFile, err := os.ReadFile(filepath.Join(data, "mender-agent.pem"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(keyFile), "-----BEGIN TSS2 PRIVATE KEY-----"))

	code, out, errOut := runCLI(t, "-c", conf, "-d", data, "show-key", "--json")
	require.Equal(t, exitOK, code, errOut)
	var info struct {
		Backend   string `json:"backend"`
		PublicKey string `json:"public_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &info))
	assert.Equal(t, "tpm", info.Backend)
	assert.Equal(t, info.PublicKey, first["pubkey"])
	assert.Equal(t, first, provision(), "provisioning again keeps the key")
}

// bootstrap -F with the TPM backend and no key yet simply creates the
// first key, as the file backend does.
func TestTPMForceBootstrapWithoutKey(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data") // does not exist yet
	conf := writeConf(t, dir, map[string]any{"Security": map[string]any{"AuthKeyBackend": "tpm", "TPMDevice": sw.Device()}})
	code, out, errOut := runCLI(t, "-c", conf, "-d", data, "bootstrap", "-F")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "tpm backend")
	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the new key: no .previous, no staged .new")
	assert.Equal(t, "mender-agent.pem", entries[0].Name())
	fi, err := os.Stat(data)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}
