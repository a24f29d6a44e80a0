package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/authserver"
)

func TestRunServesTLSAndWritesReadyFile(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "url")
	ctx, cancel := context.WithCancel(t.Context())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-tls-dir", dir, "-auto-accept", "-token-lifetime", "2m", "-ready-file", ready}, &stderr)
	}()
	t.Cleanup(func() { cancel(); <-done })

	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 30*time.Second, 10*time.Millisecond)
	raw, err := os.ReadFile(ready)
	require.NoError(t, err)
	url := strings.TrimSpace(string(raw))
	assert.True(t, strings.HasPrefix(url, "https://127.0.0.1:"), url)
	for _, f := range []string{"ca.crt", "server.crt", "server.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(url + authserver.PathManagementDevice)
	require.NoError(t, err, "ca.crt verifies the server")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	require.NoError(t, <-done)
	done <- nil
	assert.Contains(t, stderr.String(), "auto-accept true, token lifetime 2m0s")
}

func TestRunRejectsBadUsage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantOut string
	}{
		{name: "non-loopback", args: []string{"-listen", "0.0.0.0:0"}, wantOut: "not a loopback address"},
		{name: "cert without key", args: []string{"-cert", "c.pem"}, wantOut: "give both -cert and -key"},
		{name: "cert and tls-dir", args: []string{"-cert", "c", "-key", "k", "-tls-dir", "d"}, wantOut: "give both -cert and -key"},
		{name: "stray argument", args: []string{"extra"}, wantOut: `unexpected argument "extra"`},
		{name: "unknown flag", args: []string{"-nope"}, wantOut: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stderr)
			require.ErrorIs(t, err, errUsage)
			assert.Contains(t, stderr.String(), tt.wantOut)
		})
	}
	assert.NoError(t, checkLoopback("[::1]:0", false))
	assert.NoError(t, checkLoopback("localhost:0", false))
	assert.NoError(t, checkLoopback("0.0.0.0:0", true))
}
