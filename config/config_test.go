package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeConf writes content to dir/name and returns its path.
func writeConf(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// loadPair loads fallback then main from a temporary directory; an empty
// content means the file is absent.
func loadPair(t *testing.T, fallback, main string) (*Config, *test.Hook, error) {
	t.Helper()
	dir := t.TempDir()
	opts := LoadOptions{
		MainPath:     filepath.Join(dir, "etc-mender.conf"),
		FallbackPath: filepath.Join(dir, "var-lib-mender.conf"),
	}
	if fallback != "" {
		writeConf(t, dir, "var-lib-mender.conf", fallback)
	}
	if main != "" {
		writeConf(t, dir, "etc-mender.conf", main)
	}
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.TraceLevel)
	opts.Logger = log
	c, err := Load(opts)
	return c, hook, err
}

// warnings returns the messages logged at warning level or above.
func warnings(hook *test.Hook) []string {
	var msgs []string
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			msgs = append(msgs, e.Message)
		}
	}
	return msgs
}

func TestDefaults(t *testing.T) {
	c, err := Parse("empty.conf", []byte("{}"), nil)
	require.NoError(t, err)
	def := Default()
	def.sources = map[string]string{}
	assert.Equal(t, def, c)

	assert.Equal(t, TierStandard, c.DeviceTier)
	assert.True(t, c.DBus.Enabled)
	assert.Equal(t, BackendFile, c.Security.AuthKeyBackend)
	assert.Empty(t, c.Security.AuthKeyType, "unset key type is stored empty")
	assert.Equal(t, KeyTypeEd25519, c.KeyType())
	assert.Equal(t, "/dev/tpmrm0", c.Security.TPMDevice)
	assert.False(t, c.Security.TPMFallbackToFile)
	assert.False(t, c.Security.TPMRegenerateOnClear)
	assert.Empty(t, c.Security.TPMParentPasswordFile)
	assert.InDelta(t, 0.75, c.Agent.RenewAtFraction, 0)
	assert.InDelta(t, 0.05, c.Agent.RenewJitterFraction, 0)
	assert.Equal(t, 5*time.Minute, c.RenewMargin())
	assert.Equal(t, 5*time.Second, c.BackoffMin())
	assert.Equal(t, 300*time.Second, c.BackoffMax())
	assert.True(t, c.Agent.TokenCache)
	assert.Equal(t, 10*time.Second, c.IdentityTimeout())
	assert.Equal(t, 30*24*time.Hour, c.ClientCertExpiryWarning())
	assert.Equal(t, 300*time.Second, c.ForwarderIdleTimeout())
	assert.True(t, c.Agent.ForwarderEnabled)
	assert.Equal(t, logrus.InfoLevel, c.LogLevel())
	assert.Nil(t, c.ServerURLs())
	assert.Nil(t, c.VerifyKeys())
	assert.Empty(t, c.Source("ServerURL"))
}

func TestKeyTypeAndBackoffResolution(t *testing.T) {
	tests := []struct {
		name        string
		conf        string
		wantKeyType string
		wantMax     time.Duration
	}{
		{name: "file default", conf: `{}`, wantKeyType: "ed25519", wantMax: 300 * time.Second},
		{name: "tpm default", conf: `{"Security":{"AuthKeyBackend":"tpm"}}`, wantKeyType: "ecdsa-p256", wantMax: 300 * time.Second},
		{name: "explicit type wins over backend default", conf: `{"Security":{"AuthKeyBackend":"tpm","AuthKeyType":"rsa-2048"}}`, wantKeyType: "rsa-2048", wantMax: 300 * time.Second},
		{name: "file rsa-3072", conf: `{"Security":{"AuthKeyType":"RSA-3072"}}`, wantKeyType: "rsa-3072", wantMax: 300 * time.Second},
		{name: "backoff max follows retry poll interval", conf: `{"RetryPollIntervalSeconds":1800}`, wantKeyType: "ed25519", wantMax: 1800 * time.Second},
		{name: "explicit backoff max wins", conf: `{"RetryPollIntervalSeconds":1800,"Agent":{"BackoffMaxSeconds":60}}`, wantKeyType: "ed25519", wantMax: 60 * time.Second},
		{name: "backoff max never below min", conf: `{"RetryPollIntervalSeconds":2,"Agent":{"BackoffMinSeconds":10}}`, wantKeyType: "ed25519", wantMax: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.conf", []byte(tt.conf), nil)
			require.NoError(t, err)
			assert.Equal(t, tt.wantKeyType, c.KeyType())
			assert.Equal(t, tt.wantMax, c.BackoffMax())
		})
	}
}

func TestLoadPrecedenceAndMerge(t *testing.T) {
	tests := []struct {
		name     string
		fallback string
		main     string
		check    func(t *testing.T, c *Config)
	}{
		{
			name:     "main overrides fallback per key",
			fallback: `{"ServerURL":"https://fallback.example.com","TenantToken":"fb-token","RetryPollIntervalSeconds":30}`,
			main:     `{"ServerURL":"https://main.example.com"}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "https://main.example.com", c.ServerURL)
				assert.Equal(t, "fb-token", c.TenantToken.Reveal())
				assert.Equal(t, 30, c.RetryPollIntervalSeconds)
				assert.Contains(t, c.Source("ServerURL"), "etc-mender.conf")
				assert.Contains(t, c.Source("tenanttoken"), "var-lib-mender.conf")
			},
		},
		{
			name:     "only fallback present",
			fallback: `{"ServerURL":"https://fallback.example.com"}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, []string{"https://fallback.example.com"}, c.ServerURLs())
			},
		},
		{
			name: "only main present",
			main: `{"ServerURL":"https://main.example.com"}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, []string{"https://main.example.com"}, c.ServerURLs())
			},
		},
		{
			name:     "nested objects merge field by field",
			fallback: `{"Security":{"AuthPrivateKey":"/data/key.pem","AuthKeyBackend":"tpm"},"HttpsClient":{"Certificate":"/c.pem","Key":"/k.pem"}}`,
			main:     `{"Security":{"TPMDevice":"unix:/run/swtpm.sock"},"HttpsClient":{"Key":"/k2.pem"}}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "/data/key.pem", c.Security.AuthPrivateKey)
				assert.Equal(t, BackendTPM, c.Security.AuthKeyBackend)
				assert.Equal(t, "unix:/run/swtpm.sock", c.Security.TPMDevice)
				p, ok := c.TPMSocket()
				assert.True(t, ok)
				assert.Equal(t, "/run/swtpm.sock", p)
				assert.Equal(t, "/c.pem", c.HTTPSClient.Certificate)
				assert.Equal(t, "/k2.pem", c.HTTPSClient.Key)
			},
		},
		{
			name:     "Agent object merges field by field",
			fallback: `{"Agent":{"RenewAtFraction":0.5,"TokenCache":false}}`,
			main:     `{"Agent":{"RenewMarginSeconds":60}}`,
			check: func(t *testing.T, c *Config) {
				assert.InDelta(t, 0.5, c.Agent.RenewAtFraction, 0)
				assert.False(t, c.Agent.TokenCache)
				assert.Equal(t, time.Minute, c.RenewMargin())
				assert.Equal(t, DefaultBackoffMinSeconds, c.Agent.BackoffMinSeconds)
			},
		},
		{
			name:     "arrays are replaced, not appended",
			fallback: `{"Servers":[{"ServerURL":"https://a.example.com"},{"ServerURL":"https://b.example.com"}],"ArtifactVerifyKeys":["/k1.pem","/k2.pem"]}`,
			main:     `{"Servers":[{"ServerURL":"https://c.example.com"}],"ArtifactVerifyKeys":["/k3.pem"]}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, []string{"https://c.example.com"}, c.ServerURLs())
				assert.Equal(t, []string{"/k3.pem"}, c.VerifyKeys())
			},
		},
		{
			name:     "empty array in main clears fallback array",
			fallback: `{"ArtifactVerifyKeys":["/k1.pem"]}`,
			main:     `{"ArtifactVerifyKeys":[],"ArtifactVerifyKey":"/single.pem"}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, []string{"/single.pem"}, c.VerifyKeys())
			},
		},
		{
			name:     "null leaves the earlier value",
			fallback: `{"TenantToken":"fb-token","DBus":{"Enabled":false}}`,
			main:     `{"TenantToken":null,"DBus":null}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "fb-token", c.TenantToken.Reveal())
				assert.False(t, c.DBus.Enabled)
			},
		},
		{
			name:     "case-insensitive top-level keys across files",
			fallback: `{"ServerURL":"https://fallback.example.com"}`,
			main:     `{"serverurl":"https://main.example.com","DAEMONLOGLEVEL":"debug","skipverify":true}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "https://main.example.com", c.ServerURL)
				assert.Equal(t, logrus.DebugLevel, c.LogLevel())
				assert.True(t, c.SkipVerify)
			},
		},
		{
			name:     "case-insensitive nested keys",
			fallback: `{"SECURITY":{"authprivatekey":"/a.pem"}}`,
			main:     `{"security":{"AUTHKEYTYPE":"ECDSA-P384"},"httpsclient":{"certificate":"/c.pem","KEY":"/k.pem","sslengine":"pkcs11"},"dbus":{"enabled":false},"agent":{"renewatfraction":0.6},"servers":[{"serverurl":"x.example.com"}]}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "/a.pem", c.Security.AuthPrivateKey)
				assert.Equal(t, KeyTypeECDSAP384, c.Security.AuthKeyType)
				assert.Equal(t, HTTPSClient{Certificate: "/c.pem", Key: "/k.pem", SSLEngine: "pkcs11"}, c.HTTPSClient)
				assert.False(t, c.DBus.Enabled)
				assert.InDelta(t, 0.6, c.Agent.RenewAtFraction, 0)
				assert.Equal(t, []string{"https://x.example.com"}, c.ServerURLs())
			},
		},
		{
			name: "every upstream field",
			main: `{
  "ServerURL": "https://hosted.mender.io/",
  "TenantToken": "tok",
  "DeviceTier": "system",
  "ServerCertificate": "/etc/mender/server.crt",
  "SkipVerify": false,
  "HttpsClient": {"Certificate": "/c.pem", "Key": "pkcs11:object=k", "SSLEngine": "pkcs11"},
  "Security": {"AuthPrivateKey": "/k.pem", "SSLEngine": "pkcs11"},
  "DBus": {"Enabled": true},
  "RetryPollIntervalSeconds": 300,
  "RetryPollCount": 7,
  "UpdatePollIntervalSeconds": 1800,
  "InventoryPollIntervalSeconds": 28800,
  "DaemonLogLevel": "warning",
  "ArtifactVerifyKey": "/etc/mender/artifact-verify-key.pem",
  "Connectivity": {"DisableKeepAlive": true, "IdleConnTimeoutSeconds": 30}
}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "https://hosted.mender.io", c.ServerURL)
				assert.Equal(t, "tok", c.TenantToken.Reveal())
				assert.Equal(t, TierSystem, c.DeviceTier)
				assert.Equal(t, "/etc/mender/server.crt", c.ServerCertificate)
				assert.Equal(t, "pkcs11:object=k", c.HTTPSClient.Key)
				assert.Equal(t, "pkcs11", c.Security.SSLEngine)
				assert.Equal(t, 300*time.Second, c.RetryPollInterval())
				assert.Equal(t, 7, c.RetryPollCount)
				assert.Equal(t, 1800*time.Second, c.UpdatePollInterval())
				assert.Equal(t, 28800*time.Second, c.InventoryPollInterval())
				assert.Equal(t, logrus.WarnLevel, c.LogLevel())
				assert.Equal(t, []string{"/etc/mender/artifact-verify-key.pem"}, c.VerifyKeys())
				assert.Equal(t, Connectivity{DisableKeepAlive: true, IdleConnTimeoutSeconds: 30}, c.Connectivity)
			},
		},
		{
			name: "every extension field",
			main: `{
  "Security": {"AuthKeyType": "rsa-4096", "AuthKeyBackend": "file", "TPMDevice": "/dev/tpm0",
    "TPMParentPasswordFile": "/etc/mender/tpm-owner", "TPMFallbackToFile": true, "TPMRegenerateOnClear": true},
  "Agent": {"RenewAtFraction": 0.8, "RenewJitterFraction": 0, "RenewMarginSeconds": 120,
    "BackoffMinSeconds": 2, "BackoffMaxSeconds": 600, "TokenCache": false, "IdentityTimeoutSeconds": 30,
    "ClientCertExpiryWarningDays": 0, "ForwarderIdleTimeoutSeconds": 90, "ForwarderEnabled": false}
}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, Security{AuthKeyType: "rsa-4096", AuthKeyBackend: "file", TPMDevice: "/dev/tpm0",
					TPMParentPasswordFile: "/etc/mender/tpm-owner", TPMFallbackToFile: true, TPMRegenerateOnClear: true}, c.Security)
				assert.Equal(t, Agent{RenewAtFraction: 0.8, RenewJitterFraction: 0, RenewMarginSeconds: 120,
					BackoffMinSeconds: 2, BackoffMaxSeconds: 600, TokenCache: false, IdentityTimeoutSeconds: 30,
					ClientCertExpiryWarningDays: 0, ForwarderIdleTimeoutSeconds: 90, ForwarderEnabled: false}, c.Agent)
				assert.Equal(t, 600*time.Second, c.BackoffMax())
				assert.Equal(t, 90*time.Second, c.ForwarderIdleTimeout())
				_, ok := c.TPMSocket()
				assert.False(t, ok)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := loadPair(t, tt.fallback, tt.main)
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestLoadFiles(t *testing.T) {
	t.Run("missing default-path files give defaults", func(t *testing.T) {
		c, hook, err := loadPair(t, "", "")
		require.NoError(t, err)
		assert.Equal(t, TierStandard, c.DeviceTier)
		assert.Nil(t, c.ServerURLs())
		for _, e := range hook.AllEntries() {
			assert.Less(t, logrus.WarnLevel, e.Level, "missing default files must not warn: %s", e.Message)
		}
	})
	tests := []struct {
		name     string
		explicit string // "main" or "fallback"
	}{
		{name: "explicit main must exist", explicit: "main"},
		{name: "explicit fallback must exist", explicit: "fallback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := LoadOptions{
				MainPath:         filepath.Join(dir, "main.conf"),
				FallbackPath:     filepath.Join(dir, "fallback.conf"),
				MainExplicit:     tt.explicit == "main",
				FallbackExplicit: tt.explicit == "fallback",
			}
			_, err := Load(opts)
			require.Error(t, err)
			assert.ErrorIs(t, err, os.ErrNotExist)
			assert.Contains(t, err.Error(), filepath.Join(dir, tt.explicit+".conf"))
		})
	}
	t.Run("directory instead of file", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Load(LoadOptions{MainPath: dir, FallbackPath: filepath.Join(dir, "none")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), dir)
	})
	t.Run("oversized file", func(t *testing.T) {
		dir := t.TempDir()
		p := writeConf(t, dir, "big.conf", `{"UpdateLogPath":"`+strings.Repeat("a", maxFileSize)+`"}`)
		_, err := Load(LoadOptions{MainPath: p, FallbackPath: filepath.Join(dir, "none")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "larger than")
		assert.Contains(t, err.Error(), p)
	})
	t.Run("empty file warns and keeps defaults", func(t *testing.T) {
		c, hook, err := loadPair(t, "", "\n")
		require.NoError(t, err)
		assert.Equal(t, Default().Agent, c.Agent)
		warns := warnings(hook)
		require.Len(t, warns, 1)
		assert.Contains(t, warns[0], "etc-mender.conf")
		assert.Contains(t, warns[0], "empty")
	})
	t.Run("byte order mark is accepted", func(t *testing.T) {
		c, _, err := loadPair(t, "", "\xef\xbb\xbf{\"ServerURL\":\"https://bom.example.com\"}")
		require.NoError(t, err)
		assert.Equal(t, "https://bom.example.com", c.ServerURL)
	})
}

func TestExclusivity(t *testing.T) {
	tests := []struct {
		name      string
		fallback  string
		main      string
		wantField string
		wantFiles []string
	}{
		{
			name:      "ServerURL and Servers in one file",
			main:      `{"ServerURL":"https://a.example.com","Servers":[{"ServerURL":"https://b.example.com"}]}`,
			wantField: "Servers",
			wantFiles: []string{"etc-mender.conf"},
		},
		{
			name:      "ServerURL in fallback, Servers in main",
			fallback:  `{"ServerURL":"https://a.example.com"}`,
			main:      `{"Servers":[{"ServerURL":"https://b.example.com"}]}`,
			wantField: "Servers",
			wantFiles: []string{"var-lib-mender.conf", "etc-mender.conf"},
		},
		{
			name:      "Servers in fallback, ServerURL in main",
			fallback:  `{"Servers":[{"ServerURL":"https://b.example.com"}]}`,
			main:      `{"serverURL":"https://a.example.com"}`,
			wantField: "Servers",
			wantFiles: []string{"var-lib-mender.conf", "etc-mender.conf"},
		},
		{
			name:      "ArtifactVerifyKey and ArtifactVerifyKeys in one file",
			fallback:  `{"ArtifactVerifyKey":"/a.pem","ArtifactVerifyKeys":["/b.pem"]}`,
			wantField: "ArtifactVerifyKeys",
			wantFiles: []string{"var-lib-mender.conf"},
		},
		{
			name:      "ArtifactVerifyKey in main, ArtifactVerifyKeys in fallback",
			fallback:  `{"ArtifactVerifyKeys":["/b.pem"]}`,
			main:      `{"ArtifactVerifyKey":"/a.pem"}`,
			wantField: "ArtifactVerifyKeys",
			wantFiles: []string{"var-lib-mender.conf", "etc-mender.conf"},
		},
		{
			name:      "ArtifactVerifyKey in fallback, ArtifactVerifyKeys in main",
			fallback:  `{"artifactverifykey":"/a.pem"}`,
			main:      `{"ArtifactVerifyKeys":["/b.pem"]}`,
			wantField: "ArtifactVerifyKeys",
			wantFiles: []string{"var-lib-mender.conf", "etc-mender.conf"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadPair(t, tt.fallback, tt.main)
			require.Error(t, err)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, err.Error(), "mutually exclusive")
			assert.Contains(t, err.Error(), tt.wantField)
			for _, f := range tt.wantFiles {
				assert.Contains(t, err.Error(), f)
			}
		})
	}
	t.Run("empty ServerURL does not conflict", func(t *testing.T) {
		c, _, err := loadPair(t, `{"Servers":[{"ServerURL":"https://b.example.com"}]}`, `{"ServerURL":""}`)
		require.NoError(t, err)
		assert.Equal(t, []string{"https://b.example.com"}, c.ServerURLs())
	})
	t.Run("Validate catches a conflict made after loading", func(t *testing.T) {
		c := Default()
		c.ServerURL = "https://a.example.com"
		c.Servers = []Server{{ServerURL: "https://b.example.com"}}
		err := c.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "mutually exclusive")
	})
}

func TestSyntaxErrorLocation(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		wantLine int
		wantCol  int
		wantMsg  string
	}{
		{name: "missing colon", content: "{\n  \"ServerURL\": \"x\",\n  \"TenantToken\" \"t\"\n}", wantLine: 3, wantCol: 17, wantMsg: "after object key"},
		{name: "trailing comma", content: "{\n  \"ServerURL\": \"x\",\n}", wantLine: 3, wantCol: 1, wantMsg: "beginning of object key"},
		{name: "bad literal", content: "{\"SkipVerify\": tru}", wantLine: 1, wantCol: 19, wantMsg: "literal true"},
		{name: "truncated", content: "{\n\"ServerURL\": \"x\"", wantLine: 2, wantCol: 17, wantMsg: "unexpected end of file"},
		{name: "data after object", content: "{}\n{}", wantLine: 2, wantCol: 1, wantMsg: "after top-level value"},
		{name: "newline in string", content: "{\n \"ServerURL\": \"ab\n\"}", wantLine: 2, wantCol: 18, wantMsg: "in string literal"},
		{name: "comment", content: "{\n  // comment\n  \"ServerURL\": \"x\"\n}", wantLine: 2, wantCol: 3, wantMsg: "beginning of object key"},
		{name: "column counts characters", content: "{\"UpdateLogPath\": \"ü\" x}", wantLine: 1, wantCol: 23, wantMsg: "after object key:value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadPair(t, "", tt.content)
			require.Error(t, err)
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, se.File, "etc-mender.conf")
			assert.Equal(t, tt.wantLine, se.Line, "line")
			assert.Equal(t, tt.wantCol, se.Column, "column")
			assert.Contains(t, se.Msg, tt.wantMsg)
			assert.Contains(t, err.Error(), fmt.Sprintf("etc-mender.conf:%d:%d", tt.wantLine, tt.wantCol))
		})
	}
}

func TestWrongType(t *testing.T) {
	tests := []struct {
		name      string
		content   string
		wantField string
		wantLine  int
		wantCol   int
		wantMsg   string
	}{
		{name: "string field given a number", content: "{\n  \"HttpsClient\": {\n    \"Certificate\": 42\n  }\n}", wantField: "HttpsClient.Certificate", wantLine: 3, wantCol: 20, wantMsg: "expected a string, got a number"},
		{name: "lower-case key still names the canonical field", content: `{"httpsclient":{"certificate":true}}`, wantField: "HttpsClient.Certificate", wantLine: 1, wantCol: 31, wantMsg: "got a boolean"},
		{name: "bool given a string", content: `{"SkipVerify":"true"}`, wantField: "SkipVerify", wantLine: 1, wantCol: 15, wantMsg: "expected a boolean"},
		{name: "int given a fraction", content: `{"RetryPollIntervalSeconds":1.5}`, wantField: "RetryPollIntervalSeconds", wantLine: 1, wantCol: 29, wantMsg: "expected an integer"},
		{name: "int overflow", content: `{"RetryPollCount":99999999999}`, wantField: "RetryPollCount", wantLine: 1, wantCol: 19, wantMsg: "expected an integer between"},
		{name: "object given a string", content: `{"Security":"tpm"}`, wantField: "Security", wantLine: 1, wantCol: 13, wantMsg: "expected an object, got a string"},
		{name: "array given an object", content: `{"Servers":{"ServerURL":"x"}}`, wantField: "Servers", wantLine: 1, wantCol: 12, wantMsg: "expected an array"},
		{name: "array element of wrong type", content: `{"Servers":[{"ServerURL":"a.example.com"},"b.example.com"]}`, wantField: "Servers[1]", wantLine: 1, wantCol: 43, wantMsg: "expected an object, got a string"},
		{name: "field inside array element", content: `{"Servers":[{"ServerURL":7}]}`, wantField: "Servers[0].ServerURL", wantLine: 1, wantCol: 26, wantMsg: "expected a string"},
		{name: "null array element", content: `{"ArtifactVerifyKeys":["/a.pem",null]}`, wantField: "ArtifactVerifyKeys[1]", wantLine: 1, wantCol: 33, wantMsg: "expected a string, got null"},
		{name: "fraction given a string", content: `{"Agent":{"RenewAtFraction":"0.5"}}`, wantField: "Agent.RenewAtFraction", wantLine: 1, wantCol: 29, wantMsg: "expected a number"},
		{name: "tenant token given an object", content: `{"TenantToken":{}}`, wantField: "TenantToken", wantLine: 1, wantCol: 16, wantMsg: "expected a string, got an object"},
		{name: "top level is an array", content: `[{"ServerURL":"x"}]`, wantField: "(top level)", wantLine: 1, wantCol: 1, wantMsg: "expected an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadPair(t, "", tt.content)
			require.Error(t, err)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.wantField, fe.Field)
			assert.Contains(t, fe.File, "etc-mender.conf")
			assert.Equal(t, tt.wantLine, fe.Line, "line")
			assert.Equal(t, tt.wantCol, fe.Column, "column")
			assert.Contains(t, fe.Msg, tt.wantMsg)
			assert.Contains(t, err.Error(), tt.wantField)
			assert.Contains(t, err.Error(), "etc-mender.conf")
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		wantWarn []string // dotted keys warned about
	}{
		{name: "unknown top-level key", content: `{"ServerUrll":"https://x.example.com"}`, wantWarn: []string{"ServerUrll"}},
		{name: "unknown nested key", content: `{"Security":{"AuthKeyTyp":"ed25519"}}`, wantWarn: []string{"Security.AuthKeyTyp"}},
		{name: "unknown key in Agent", content: `{"Agent":{"RenewAt":0.5}}`, wantWarn: []string{"Agent.RenewAt"}},
		{name: "unknown key in Servers entry", content: `{"Servers":[{"ServerURL":"https://a.example.com","Weight":2}]}`, wantWarn: []string{"Servers[0].Weight"}},
		{name: "several unknown keys", content: `{"Foo":1,"Bar":{"x":1}}`, wantWarn: []string{"Foo", "Bar"}},
		{name: "keys of other Mender tools are silent", content: `{"RootfsPartA":"/dev/mmcblk0p2","RootfsPartB":"/dev/mmcblk0p3","UpdateLogPath":"/data/log","ModuleTimeoutSeconds":14400,"StateScriptTimeoutSeconds":60,"StateScriptRetryTimeoutSeconds":1800,"StateScriptRetryIntervalSeconds":60,"BootUtilitiesSetActivePart":"x","BootUtilitiesGetNextActivePart":"y","DeviceTypeFile":"/data/mender/device_type","UpdateControlMapExpirationTimeSeconds":1,"UpdateControlMapBootExpirationTimeSeconds":1,"updatecontrolmappollintervalseconds":1,"RetryDownloadCount":10,"ModulesPath":"/usr/share/mender/modules/v3","ModulesWorkPath":"/data/mender/modules/v3","ArtifactScriptsPath":"/etc/mender/scripts","RootfsScriptsPath":"/etc/mender/scripts"}`},
		{name: "Connectivity is silent", content: `{"Connectivity":{"DisableKeepAlive":true,"IdleConnTimeoutSeconds":30}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, hook, err := loadPair(t, "", tt.content)
			require.NoError(t, err)
			var warned []string
			for _, e := range hook.AllEntries() {
				if e.Level > logrus.WarnLevel {
					continue
				}
				key, _ := e.Data[fieldKey].(string)
				warned = append(warned, key)
				assert.Contains(t, e.Message, key, "message names the key")
				assert.Contains(t, e.Message, "etc-mender.conf", "message names the file")
				assert.Contains(t, e.Data[fieldFile], "etc-mender.conf")
			}
			assert.ElementsMatch(t, tt.wantWarn, warned)
		})
	}
	t.Run("repeated key warns and the later one wins", func(t *testing.T) {
		c, hook, err := loadPair(t, "", `{"ServerURL":"https://a.example.com","serverurl":"https://b.example.com"}`)
		require.NoError(t, err)
		assert.Equal(t, "https://b.example.com", c.ServerURL)
		warns := warnings(hook)
		require.Len(t, warns, 1)
		assert.Contains(t, warns[0], `"serverurl"`)
		assert.Contains(t, warns[0], "etc-mender.conf")
	})
}

func TestURLNormalisation(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "unchanged", in: "https://hosted.mender.io", want: "https://hosted.mender.io"},
		{name: "trailing slash trimmed", in: "https://hosted.mender.io/", want: "https://hosted.mender.io"},
		{name: "several trailing slashes", in: "https://docker.mender.io///", want: "https://docker.mender.io"},
		{name: "scheme assumed", in: "docker.mender.io", want: "https://docker.mender.io"},
		{name: "scheme assumed with port and path", in: "mender.example.com:8443/prefix/", want: "https://mender.example.com:8443/prefix"},
		{name: "http kept", in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{name: "ipv6 literal", in: "https://[::1]:443/", want: "https://[::1]:443"},
		{name: "surrounding space trimmed", in: " https://a.example.com ", want: "https://a.example.com"},
		{name: "empty", in: "   ", wantErr: "empty URL"},
		{name: "unsupported scheme", in: "ftp://a.example.com", wantErr: `scheme "ftp"`},
		{name: "no host", in: "https:///path", wantErr: "has no host"},
		{name: "query", in: "https://a.example.com/?x=1", wantErr: "query"},
		{name: "fragment", in: "https://a.example.com#frag", wantErr: "fragment"},
		{name: "bad port", in: "https://a.example.com:99999", wantErr: "invalid port"},
		{name: "credentials are refused and not echoed", in: "https://user:hunter2@a.example.com", wantErr: "credentials"},
		{name: "unparsable", in: "https://a b.example.com%zz", wantErr: "not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, form := range []string{`{"ServerURL":%q}`, `{"Servers":[{"ServerURL":"https://first.example.com"},{"ServerURL":%q}]}`} {
				c, err := Parse("url.conf", []byte(fmt.Sprintf(form, tt.in)), nil)
				if tt.wantErr != "" {
					require.Error(t, err)
					assert.Contains(t, err.Error(), tt.wantErr)
					assert.Contains(t, err.Error(), "url.conf")
					assert.Regexp(t, `ServerURL|Servers\[1\]\.ServerURL`, err.Error(), "names the field")
					assert.NotContains(t, err.Error(), "hunter2")
					continue
				}
				require.NoError(t, err)
				urls := c.ServerURLs()
				assert.Equal(t, tt.want, urls[len(urls)-1])
			}
		})
	}
}

func TestServersDeduplicated(t *testing.T) {
	c, err := Parse("s.conf", []byte(`{"Servers":[
		{"ServerURL":"https://a.example.com"},
		{"ServerURL":"a.example.com/"},
		{"ServerURL":"https://b.example.com"},
		{"ServerURL":"https://a.example.com"}]}`), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://a.example.com", "https://b.example.com"}, c.ServerURLs())
	assert.Equal(t, []Server{{ServerURL: "https://a.example.com"}, {ServerURL: "https://b.example.com"}}, c.Servers)

	c, err = Parse("k.conf", []byte(`{"ArtifactVerifyKeys":["/a.pem","/b.pem","/a.pem"]}`), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"/a.pem", "/b.pem"}, c.VerifyKeys())
}

func TestDeviceTier(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{name: "default", content: `{}`, want: "standard"},
		{name: "standard", content: `{"DeviceTier":"standard"}`, want: "standard"},
		{name: "system", content: `{"DeviceTier":"system"}`, want: "system"},
		{name: "micro", content: `{"devicetier":"micro"}`, want: "micro"},
		{name: "empty means standard", content: `{"DeviceTier":""}`, want: "standard"},
		{name: "invalid", content: `{"DeviceTier":"gold"}`, wantErr: `DeviceTier: "gold" is not a device tier`},
		{name: "case matters as upstream", content: `{"DeviceTier":"System"}`, wantErr: `"System" is not a device tier`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("tier.conf", []byte(tt.content), nil)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), "config tier.conf")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.DeviceTier)
		})
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr []string
	}{
		{name: "bad log level", content: `{"DaemonLogLevel":"verbose"}`, wantErr: []string{"DaemonLogLevel", `"verbose"`}},
		{name: "bad key type", content: `{"Security":{"AuthKeyType":"dsa-1024"}}`, wantErr: []string{"Security.AuthKeyType", `"dsa-1024"`, "ed25519"}},
		{name: "ed25519 on tpm", content: `{"Security":{"AuthKeyBackend":"tpm","AuthKeyType":"ed25519"}}`, wantErr: []string{"Security.AuthKeyType", `"ed25519"`, "tpm backend"}},
		{name: "bad backend", content: `{"Security":{"AuthKeyBackend":"pkcs11"}}`, wantErr: []string{"Security.AuthKeyBackend", `"pkcs11"`}},
		{name: "socket without path", content: `{"Security":{"TPMDevice":"unix:"}}`, wantErr: []string{"Security.TPMDevice", `"unix:"`}},
		{name: "renew fraction zero", content: `{"Agent":{"RenewAtFraction":0}}`, wantErr: []string{"Agent.RenewAtFraction", "0 is outside (0,1)"}},
		{name: "renew fraction one", content: `{"Agent":{"RenewAtFraction":1}}`, wantErr: []string{"Agent.RenewAtFraction", "1 is outside (0,1)"}},
		{name: "renew fraction negative", content: `{"Agent":{"RenewAtFraction":-0.5}}`, wantErr: []string{"Agent.RenewAtFraction", "-0.5"}},
		{name: "jitter too large", content: `{"Agent":{"RenewJitterFraction":1.5}}`, wantErr: []string{"Agent.RenewJitterFraction", "1.5 is outside [0,1)"}},
		{name: "negative margin", content: `{"Agent":{"RenewMarginSeconds":-1}}`, wantErr: []string{"Agent.RenewMarginSeconds", "-1 is negative"}},
		{name: "zero backoff min", content: `{"Agent":{"BackoffMinSeconds":0}}`, wantErr: []string{"Agent.BackoffMinSeconds", "0 is not positive"}},
		{name: "backoff max below min", content: `{"Agent":{"BackoffMinSeconds":60,"BackoffMaxSeconds":30}}`, wantErr: []string{"Agent.BackoffMaxSeconds", "30 is below"}},
		{name: "zero identity timeout", content: `{"Agent":{"IdentityTimeoutSeconds":0}}`, wantErr: []string{"Agent.IdentityTimeoutSeconds", "0 is not positive"}},
		{name: "negative expiry warning", content: `{"Agent":{"ClientCertExpiryWarningDays":-3}}`, wantErr: []string{"Agent.ClientCertExpiryWarningDays", "-3"}},
		{name: "zero forwarder idle timeout", content: `{"Agent":{"ForwarderIdleTimeoutSeconds":0}}`, wantErr: []string{"Agent.ForwarderIdleTimeoutSeconds"}},
		{name: "negative poll interval", content: `{"UpdatePollIntervalSeconds":-5}`, wantErr: []string{"UpdatePollIntervalSeconds", "-5 is negative"}},
		{name: "negative retry count", content: `{"RetryPollCount":-1}`, wantErr: []string{"RetryPollCount", "-1 is negative"}},
		{name: "mTLS certificate without key", content: `{"HttpsClient":{"Certificate":"/c.pem"}}`, wantErr: []string{"HttpsClient.Certificate", "without HttpsClient.Key"}},
		{name: "mTLS key without certificate", content: `{"HttpsClient":{"Key":"/k.pem"}}`, wantErr: []string{"HttpsClient.Key", "without HttpsClient.Certificate"}},
		{name: "empty verify key path", content: `{"ArtifactVerifyKeys":[""]}`, wantErr: []string{"ArtifactVerifyKeys[0]", "empty path"}},
		{name: "all errors are reported together", content: `{"DeviceTier":"x","DaemonLogLevel":"y"}`, wantErr: []string{"DeviceTier", "DaemonLogLevel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("v.conf", []byte(tt.content), nil)
			require.Error(t, err)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
			assert.Contains(t, err.Error(), "config v.conf")
		})
	}
	t.Run("accepted values", func(t *testing.T) {
		for _, kt := range KeyTypes {
			c, err := Parse("v.conf", []byte(`{"Security":{"AuthKeyType":"`+strings.ToUpper(kt)+`"}}`), nil)
			require.NoError(t, err, kt)
			assert.Equal(t, kt, c.KeyType())
		}
		for _, lvl := range []string{"panic", "fatal", "error", "warn", "warning", "info", "debug", "trace", "DEBUG"} {
			_, err := Parse("v.conf", []byte(`{"DaemonLogLevel":"`+lvl+`"}`), nil)
			assert.NoError(t, err, lvl)
		}
		c, err := Parse("v.conf", []byte(`{"Security":{"AuthKeyBackend":"TPM","TPMDevice":""},"Agent":{"RenewJitterFraction":0}}`), nil)
		require.NoError(t, err)
		assert.Equal(t, BackendTPM, c.Security.AuthKeyBackend)
		assert.Equal(t, DefaultTPMDevice, c.Security.TPMDevice, "empty device means the default")
	})
}

func TestSecretsNeverPrinted(t *testing.T) {
	const token = "eyJ0ZW5hbnQiOiJzZWNyZXQtdGVuYW50In0.c2lnbmF0dXJl"
	c, hook, err := loadPair(t, "", `{"TenantToken":"`+token+`","Unknown":"x","Connectivity":{}}`)
	require.NoError(t, err)
	assert.Equal(t, token, c.TenantToken.Reveal())
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v", *c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c), c.TenantToken.String()} {
		assert.NotContains(t, s, token)
	}
	assert.Contains(t, fmt.Sprintf("%+v", *c), "[redacted]")
	js, err := json.Marshal(c)
	require.NoError(t, err)
	assert.NotContains(t, string(js), token)
	assert.Contains(t, string(js), `"TenantToken":"[redacted]"`)
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		require.NoError(t, err)
		assert.NotContains(t, line, token)
	}
	_, err = Parse("s.conf", []byte(`{"TenantToken":"`+token+`","DeviceTier":"bad"}`), nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), token)
	assert.Empty(t, Secret("").String(), "an unset secret prints empty")
}

func TestErrorsAreMatchable(t *testing.T) {
	_, err := Parse("m.conf", []byte(`{`), nil)
	var se *SyntaxError
	assert.True(t, errors.As(err, &se))
	var fe *FieldError
	assert.False(t, errors.As(err, &fe))
}

func BenchmarkParse(b *testing.B) {
	data := []byte(seedExtended)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.conf", data, nil); err != nil {
			b.Fatal(err)
		}
	}
}
