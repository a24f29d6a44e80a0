package dbus

import (
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
)

func godbusPath(p string) godbus.ObjectPath { return godbus.ObjectPath(p) }

func TestNewChecksConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "no service", cfg: Config{}, wantErr: "Service is nil"},
		{name: "min above max", cfg: Config{Service: newFakeService(), ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, wantErr: "want 0 < min <= max"},
		{name: "negative min", cfg: Config{Service: newFakeService(), ReconnectMin: -time.Second}, wantErr: "want 0 < min <= max"},
		{name: "defaults", cfg: Config{Service: newFakeService()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, s)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, DefaultReconnectMin, s.min)
			assert.Equal(t, DefaultReconnectMax, s.max)
		})
	}
}

func TestNextDelay(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want time.Duration
	}{
		{name: "doubles", d: 100 * time.Millisecond, want: 200 * time.Millisecond},
		{name: "capped", d: 8 * time.Second, want: 10 * time.Second},
		{name: "stays at max", d: 10 * time.Second, want: 10 * time.Second},
		{name: "raised to min", d: 0, want: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nextDelay(tt.d, 100*time.Millisecond, 10*time.Second))
		})
	}
}

func TestStateWithoutTokenIsEmpty(t *testing.T) {
	calls := 0
	o := authObject{svc: newFakeService(), localURL: func(agent.Token) string { calls++; return "http://127.0.0.1:1" }}
	jwt, url, dErr := o.GetJwtToken()
	assert.Nil(t, dErr)
	assert.Empty(t, jwt)
	assert.Empty(t, url)
	assert.Zero(t, calls, "no URL is computed without a token")
}
