package tokencache_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/agenttest"
	"github.com/mender-agent/mender-agent/agent/tokencache"
)

const (
	server      = "https://mender.example.com"
	tenantToken = "tenant-secret-token-value"
	fingerprint = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func newCache(t *testing.T, dir string, b tokencache.Binding) *tokencache.Cache {
	t.Helper()
	c, err := tokencache.New(tokencache.Options{Path: filepath.Join(dir, tokencache.FileName), Binding: b, Now: clock})
	require.NoError(t, err)
	return c
}

func binding() tokencache.Binding {
	return tokencache.NewBinding([]string{server, "https://backup.example.com"}, tenantToken, fingerprint)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, dir, binding())
	tok := agenttest.NewToken(server, now.Add(-time.Hour), now.Add(time.Hour))
	require.NoError(t, c.Save(tok))

	path := filepath.Join(dir, tokencache.FileName)
	assert.Equal(t, path, c.Path())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), tenantToken, "the tenant token itself is never stored")
	var onDisk struct {
		JWT       string `json:"jwt"`
		ServerURL string `json:"server_url"`
		Binding   struct {
			ServerURLs     []string `json:"server_urls"`
			TenantHash     string   `json:"tenant_hash"`
			KeyFingerprint string   `json:"key_fingerprint"`
		} `json:"binding"`
		SavedAt time.Time `json:"saved_at"`
	}
	require.NoError(t, json.Unmarshal(raw, &onDisk))
	assert.Equal(t, tok.JWT(), onDisk.JWT)
	assert.Equal(t, server, onDisk.ServerURL)
	assert.Equal(t, []string{server, "https://backup.example.com"}, onDisk.Binding.ServerURLs)
	// sha256("tenant-secret-token-value")
	assert.Equal(t, tokencache.HashTenantToken(tenantToken), onDisk.Binding.TenantHash)
	assert.Len(t, onDisk.Binding.TenantHash, 64)
	assert.Equal(t, fingerprint, onDisk.Binding.KeyFingerprint)
	assert.Equal(t, now, onDisk.SavedAt)

	// A new Cache (a restart) loads the same token.
	got, err := newCache(t, dir, binding()).Load()
	require.NoError(t, err)
	assert.Equal(t, tok, got)
}

func TestLoadMissingFile(t *testing.T) {
	got, err := newCache(t, t.TempDir(), binding()).Load()
	require.NoError(t, err)
	assert.True(t, got.IsZero())
}

func TestHashTenantToken(t *testing.T) {
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", tokencache.HashTenantToken(""))
	assert.Equal(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", tokencache.HashTenantToken("hello"))
}

func TestLoadDiscards(t *testing.T) {
	valid := agenttest.NewToken(server, now.Add(-time.Hour), now.Add(time.Hour))
	tests := []struct {
		name    string
		saveAs  tokencache.Binding // binding the file was written under
		token   agent.Token
		content string // raw content instead of a saved token
		mode    os.FileMode
		wantErr string
	}{
		{name: "other servers", saveAs: tokencache.NewBinding([]string{server}, tenantToken, fingerprint), token: valid,
			wantErr: `bound to servers ["https://mender.example.com"], configured are`},
		{name: "servers reordered", saveAs: tokencache.NewBinding([]string{"https://backup.example.com", server}, tenantToken, fingerprint), token: valid,
			wantErr: "bound to servers"},
		{name: "other tenant token", saveAs: tokencache.NewBinding([]string{server, "https://backup.example.com"}, "other", fingerprint), token: valid,
			wantErr: "bound to another tenant token"},
		{name: "other device key", saveAs: tokencache.NewBinding([]string{server, "https://backup.example.com"}, tenantToken, "abcd"), token: valid,
			wantErr: "bound to another device key"},
		{name: "expired", saveAs: binding(), token: agenttest.NewToken(server, now.Add(-2*time.Hour), now.Add(-time.Second)),
			wantErr: "token expired at 2026-05-01T11:59:59Z"},
		{name: "expires right now", saveAs: binding(), token: agenttest.NewToken(server, now.Add(-2*time.Hour), now),
			wantErr: "token expired at"},
		{name: "not json", content: "{not json", wantErr: "not a token cache file"},
		{name: "trailing data", content: `{"jwt":"a.b.c"} {}`, wantErr: "data after the JSON object"},
		{name: "empty file", content: "", wantErr: "not a token cache file"},
		{name: "not a jwt", content: `{"jwt":"nope","server_url":"` + server + `","binding":` + bindingJSON() + `}`,
			wantErr: "holds no usable token: malformed token: 1 dot-separated parts"},
		{name: "unknown server", content: `{"jwt":"a.b.c","server_url":"https://evil.example.com","binding":` + bindingJSON() + `}`,
			wantErr: `issued by "https://evil.example.com", which is not a configured server`},
		{name: "too large", content: `{"jwt":"` + strings.Repeat("a", agent.MaxTokenSize+20<<10) + `"}`, wantErr: "larger than"},
		{name: "readable by others", saveAs: binding(), token: valid, mode: 0o644, wantErr: "file mode 0644 lets others read it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tokencache.FileName)
			if tt.content != "" || tt.token.IsZero() {
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			} else {
				c, err := tokencache.New(tokencache.Options{Path: path, Binding: tt.saveAs, Now: func() time.Time { return now.Add(-time.Hour) }})
				require.NoError(t, err)
				require.NoError(t, c.Save(tt.token))
			}
			if tt.mode != 0 {
				require.NoError(t, os.Chmod(path, tt.mode))
			}

			got, err := newCache(t, dir, binding()).Load()
			require.ErrorIs(t, err, tokencache.ErrDiscarded)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), path, "the error names the file")
			assert.True(t, got.IsZero())
			assert.NoFileExists(t, path, "a discarded cache is deleted")
			assert.NotContains(t, err.Error(), tenantToken)
			if !tt.token.IsZero() {
				assert.NotContains(t, err.Error(), strings.Split(tt.token.JWT(), ".")[1], "the error never holds the token")
			}
		})
	}
}

func bindingJSON() string {
	b, err := json.Marshal(binding())
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestLoadNotRegularFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, tokencache.FileName)
	require.NoError(t, os.Mkdir(path, 0o700))
	_, err := newCache(t, dir, binding()).Load()
	require.Error(t, err)
	assert.NotErrorIs(t, err, tokencache.ErrDiscarded)
	assert.Contains(t, err.Error(), "not a regular file")
	assert.DirExists(t, path, "left alone")
}

func TestTrailingSlashIsTheSameServer(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, dir, tokencache.NewBinding([]string{server + "/"}, "", fingerprint))
	tok := agenttest.NewToken(server, now.Add(-time.Hour), now.Add(time.Hour))
	require.NoError(t, c.Save(tok))
	got, err := c.Load()
	require.NoError(t, err)
	assert.Equal(t, tok, got)
}

func TestSaveRefusesForeignServer(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, dir, binding())
	err := c.Save(agenttest.NewToken("https://elsewhere.example.com", now, now.Add(time.Hour)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"https://elsewhere.example.com", which is not a configured server`)
	assert.NoFileExists(t, c.Path())
}

func TestClear(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, dir, binding())
	require.NoError(t, c.Clear(), "clearing an empty cache")
	require.NoError(t, c.Save(agenttest.NewToken(server, now, now.Add(time.Hour))))
	require.FileExists(t, c.Path())
	require.NoError(t, c.Clear())
	assert.NoFileExists(t, c.Path())

	require.NoError(t, c.Save(agenttest.NewToken(server, now, now.Add(time.Hour))))
	require.NoError(t, c.Save(agent.Token{}), "saving no token clears")
	assert.NoFileExists(t, c.Path())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no temporary files left behind")
}

func TestSaveIntoMissingDirectory(t *testing.T) {
	c := newCache(t, filepath.Join(t.TempDir(), "missing"), binding())
	err := c.Save(agenttest.NewToken(server, now, now.Add(time.Hour)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing")
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		binding tokencache.Binding
		wantErr string
	}{
		{name: "valid", path: "/data/" + tokencache.FileName, binding: binding()},
		{name: "no path", binding: binding(), wantErr: "Path is empty"},
		{name: "no servers", path: "/data/x", binding: tokencache.NewBinding(nil, "", fingerprint), wantErr: "no server URL"},
		{name: "empty server", path: "/data/x", binding: tokencache.NewBinding([]string{server, ""}, "", fingerprint), wantErr: "server URL 2 is empty"},
		{name: "no fingerprint", path: "/data/x", binding: tokencache.NewBinding([]string{server}, "", ""), wantErr: "key fingerprint"},
		{name: "hand-built without hash", path: "/data/x", binding: tokencache.Binding{ServerURLs: []string{server}, KeyFingerprint: "x"}, wantErr: "tenant hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tokencache.New(tokencache.Options{Path: tt.path, Binding: tt.binding})
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.path, c.Path())
		})
	}
}

// TestAgentRestartUsesCache runs the real agent over the file cache twice:
// the second start takes the token from the file and sends no auth request.
func TestAgentRestartUsesCache(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c, err := tokencache.New(tokencache.Options{Path: filepath.Join(dir, tokencache.FileName), Binding: binding()})
		require.NoError(t, err)
		run := func() (*agenttest.Authenticator, agent.Token) {
			auth := &agenttest.Authenticator{Fallback: func(context.Context, int) (agent.Token, error) {
				return agenttest.NewToken(server, time.Now(), time.Now().Add(24*time.Hour)), nil
			}}
			ag, err := agent.New(agent.Config{Authenticator: auth, Cache: c})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- ag.Run(ctx) }()
			synctest.Wait()
			tok := ag.Current()
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
			return auth, tok
		}
		auth1, tok1 := run()
		require.Equal(t, 1, auth1.Calls())
		require.False(t, tok1.IsZero())
		time.Sleep(time.Hour)
		auth2, tok2 := run()
		assert.Equal(t, 0, auth2.Calls(), "a restart costs no auth request")
		assert.Equal(t, tok1, tok2)
	})
}
