package dbus

import (
	"context"
	"errors"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCallErrorClassifies(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr error
		wantMsg string
	}{
		{name: "not running", err: godbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}, wantErr: ErrNoAgent, wantMsg: "is mender-agent running?"},
		{name: "no owner", err: godbus.Error{Name: "org.freedesktop.DBus.Error.NameHasNoOwner"}, wantErr: ErrNoAgent},
		{name: "denied", err: godbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied"}, wantErr: ErrAccessDenied, wantMsg: "run as root or allow your group"},
		{name: "other bus error", err: godbus.Error{Name: "org.freedesktop.DBus.Error.NoReply"}, wantMsg: "NoReply"},
		{name: "closed", err: godbus.ErrClosed, wantErr: godbus.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := callError("GetJwtToken", tt.err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
			assert.Contains(t, err.Error(), "GetJwtToken on "+BusName)
			assert.Contains(t, err.Error(), tt.wantMsg)
			if !errors.Is(tt.wantErr, ErrNoAgent) {
				assert.NotErrorIs(t, err, ErrNoAgent)
			}
		})
	}
}

func TestFetchTokenWithoutOutcome(t *testing.T) {
	bus := startBus(t)
	svc := newFakeService()
	serve(t, bus, svc)
	conn := dial(t, bus.Address)

	// The fake never completes the attempt, so the wait always runs out;
	// it only needs to leave time for the three calls before it.
	_, _, err := FetchToken(context.Background(), conn, 2*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "no signal within 2s")
	assert.Equal(t, int64(1), svc.requests.Load(), "the fetch was requested")

	svc.stopped.Store(true)
	_, _, err = FetchToken(context.Background(), conn, time.Minute)
	require.ErrorIs(t, err, ErrFetchRefused)
}

func TestClientWithoutAgent(t *testing.T) {
	bus := startBus(t)
	conn := dial(t, bus.Address)
	_, _, err := GetToken(context.Background(), conn)
	require.ErrorIs(t, err, ErrNoAgent)
	_, _, err = FetchToken(context.Background(), conn, time.Minute)
	require.ErrorIs(t, err, ErrNoAgent)
}

func TestDialReportsAddress(t *testing.T) {
	_, err := Dial("unix:path=/nonexistent/bus")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/nonexistent/bus")

	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/system")
	_, err = Dial("")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/nonexistent/system", "an empty address honours DBUS_SYSTEM_BUS_ADDRESS")
}
