package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
)

func writeArtifact(t *testing.T, dir string, signer *ecdsa.PrivateKey, payload []byte) string {
	t.Helper()
	a := artifacttest.Artifact{
		Name:    "release-1",
		Devices: []string{"qemux86-64"},
		Payloads: []artifacttest.Payload{{
			Type:  "rootfs-image",
			Files: []artifacttest.File{artifacttest.Bytes("rootfs.ext4", payload)},
		}},
	}
	if signer != nil {
		a.Signer = signer
	}
	var buf bytes.Buffer
	require.NoError(t, a.Write(&buf))
	p := filepath.Join(dir, "a.mender")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	return p
}

func pubPEM(t *testing.T, dir, name string, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	return p
}

func TestVerifyArtifactCommand(t *testing.T) {
	dir := t.TempDir()
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	good := pubPEM(t, dir, "good.pem", signer)
	wrong := pubPEM(t, dir, "wrong.pem", other)
	art := writeArtifact(t, dir, signer, bytes.Repeat([]byte("rootfs"), 1000))
	unsignedDir := t.TempDir()
	unsigned := writeArtifact(t, unsignedDir, nil, []byte("x"))
	conf := writeConf(t, dir, map[string]any{"ArtifactVerifyKeys": []string{wrong, good}})

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "valid with -k", args: []string{"verify-artifact", "-k", good, art}, wantCode: exitOK, wantOut: "release-1"},
		{name: "key rotation: second key matches", args: []string{"verify-artifact", "-k", wrong, "-k", good, art}, wantCode: exitOK, wantOut: good},
		{name: "keys from mender.conf", args: []string{"-c", conf, "verify-artifact", art}, wantCode: exitOK, wantOut: "rootfs.ext4"},
		{name: "json", args: []string{"verify-artifact", "--json", "-k", good, art}, wantCode: exitOK, wantOut: `"name": "release-1"`},
		{name: "wrong key is invalid", args: []string{"verify-artifact", "-k", wrong, art}, wantCode: exitFailure, wantErr: "signature"},
		{name: "unsigned is invalid", args: []string{"verify-artifact", "-k", good, unsigned}, wantCode: exitFailure, wantErr: "not signed"},
		{name: "unreadable key", args: []string{"verify-artifact", "-k", filepath.Join(dir, "missing.pem"), art}, wantCode: exitUsage, wantErr: "missing.pem"},
		{name: "missing artifact", args: []string{"verify-artifact", "-k", good, filepath.Join(dir, "nope.mender")}, wantCode: exitUsage, wantErr: "nope.mender"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			assert.Equal(t, tt.wantCode, code, "stdout: %s\nstderr: %s", out, errOut)
			if tt.wantOut != "" {
				assert.Contains(t, out, tt.wantOut)
			}
			if tt.wantErr != "" {
				assert.Contains(t, errOut, tt.wantErr)
			}
		})
	}

	// A payload byte changed: invalid, with the file named.
	data, err := os.ReadFile(art)
	require.NoError(t, err)
	i := bytes.LastIndex(data, []byte("rootfs"))
	require.Positive(t, i)
	tampered := filepath.Join(dir, "tampered.mender")
	tdata := bytes.Clone(data)
	tdata[i] ^= 0xff
	require.NoError(t, os.WriteFile(tampered, tdata, 0o644))
	code, _, errOut := runCLI(t, "verify-artifact", "-k", good, tampered)
	assert.Equal(t, exitFailure, code, errOut)
}
