package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURLErrorsNeverShowCredentials(t *testing.T) {
	tests := []struct {
		name string
		conf string
	}{
		{name: "unparsable port", conf: `{"ServerURL": "https://bob:hunter2@host:80x"}`},
		{name: "bad scheme", conf: `{"ServerURL": "ftp://bob:hunter2@host"}`},
		{name: "in Servers", conf: `{"Servers": [{"ServerURL": "https://bob:hunter2@host:80x"}]}`},
		{name: "credentials", conf: `{"ServerURL": "https://bob:hunter2@host"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("mender.conf", []byte(tt.conf), nil)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "hunter2")
			assert.Contains(t, err.Error(), "ServerURL")
		})
	}
	assert.Equal(t, "https://REDACTED@host:80x/p", redactRaw("https://bob:pw@host:80x/p"))
	assert.Equal(t, "host/a@b", redactRaw("host/a@b"))
}
