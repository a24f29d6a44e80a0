package config

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Seeds in the style of the examples shipped with the Mender client.
const (
	seedDemo = `{
  "InventoryPollIntervalSeconds": 5,
  "RetryPollIntervalSeconds": 30,
  "ServerURL": "https://docker.mender.io",
  "ServerCertificate": "/etc/mender/server.crt",
  "UpdatePollIntervalSeconds": 5
}`
	seedProduction = `{
  "ClientProtocol": "https",
  "HttpsClient": {
    "Certificate": "",
    "Key": ""
  },
  "RootfsPartA": "/dev/mmcblk0p2",
  "RootfsPartB": "/dev/mmcblk0p3",
  "InventoryPollIntervalSeconds": 28800,
  "RetryPollIntervalSeconds": 300,
  "ServerURL": "https://hosted.mender.io/",
  "TenantToken": "dummy",
  "UpdatePollIntervalSeconds": 1800
}`
	seedExtended = `{
  "Servers": [{"ServerURL": "eu.hosted.mender.io"}, {"serverurl": "https://hosted.mender.io/"}],
  "DeviceTier": "micro",
  "Security": {"AuthKeyBackend": "tpm", "TPMDevice": "unix:/run/swtpm/sock", "TPMFallbackToFile": true},
  "Agent": {"RenewAtFraction": 0.5, "RenewJitterFraction": 0.1, "TokenCache": false},
  "ArtifactVerifyKeys": ["/etc/mender/a.pem", "/etc/mender/b.pem"],
  "DBus": {"Enabled": true}, "DaemonLogLevel": "debug"
}`
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{seedDemo, seedProduction, seedExtended, `{}`, ``, `[]`, `{"Servers":[null]}`, `{"a":{"b":{"c":[1,2,{"d":null}]}}}`, "{\n\"ServerURL\" 1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", data, nil)
		if err != nil {
			var se *SyntaxError
			var fe *FieldError
			require.True(t, errors.As(err, &se) || errors.As(err, &fe), "unclassified error %T: %v", err, err)
			return
		}
		require.NoError(t, c.Validate())
		// A loaded configuration is already normalized: writing it out and
		// reading it back changes nothing.
		out, err := json.Marshal(c)
		require.NoError(t, err)
		again, err := Parse("again.conf", out, nil)
		require.NoError(t, err, "re-parsing %s", out)
		c.sources, again.sources = nil, nil
		if c.TenantToken != "" {
			assert.Equal(t, Secret("[redacted]"), again.TenantToken, "JSON output redacts the tenant token")
			again.TenantToken = c.TenantToken
		}
		assert.Equal(t, c, again)
	})
}
