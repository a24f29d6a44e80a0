//go:build qemu

package qemu

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/authserver"
)

// TestGuest boots every architecture twice with one persistent data disk.
//
// Boot 1 starts while the server is down: the agent creates its key (in the
// TPM on x86-64), keeps retrying, and authenticates once the server is back,
// without a restart. A root consumer then gets the token with
// FetchJwtToken, the JwtTokenStateChange signal and GetJwtToken, uses it
// through the loopback forwarder, and a non-root consumer is refused by
// the shipped policy.
//
// Boot 2 reuses the disk (and the TPM state): the agent serves the cached
// token with no authentication request at all, and when a consumer asks
// for a fresh token the same public key reaches the server, so no new
// device appears.
func TestGuest(t *testing.T) {
	for _, a := range guestArches() {
		t.Run(a.name, func(t *testing.T) {
			srv, ca := newServer(t)
			m := newMachine(t, a, srv, ca)

			// Boot 1: server down at boot.
			srv.SetOutage(true)
			ctx, cancel := context.WithCancel(context.Background())
			outage := endOutageAfterFailure(ctx, srv)
			first := m.boot(1)
			cancel()
			require.True(t, <-outage, "the agent never tried to authenticate while the server was down")
			assertChecks(t, first, bootChecks(a, 1))
			boot1 := srv.RequestLog()
			devs := srv.Devices()
			require.Len(t, devs, 1, "one device after the first boot")
			dev := devs[0]
			assert.Equal(t, authserver.StatusAccepted, dev.Status)
			assert.Equal(t, dev.ID, first.values["first_sub"], "the token the agent got after the outage is the server's device")
			assert.Equal(t, dev.ID, first.values["fetched_sub"], "the fetched token is the server's device")
			assert.Contains(t, dev.Identity, `"mac":"52:54:00:12:34:56"`, "the identity script ran in the guest")
			wantBackend := "file"
			if a.tpm {
				wantBackend = "tpm"
			}
			assert.Equal(t, wantBackend, first.values["key_backend"])
			assert.NotEmpty(t, first.values["key_fingerprint"])

			cut, ok := indexOf(boot1, 0, func(r authserver.Request) bool { return r.Path == authserver.PathAuth && r.Status == 0 })
			require.True(t, ok)
			authOK, ok := indexOf(boot1, 0, func(r authserver.Request) bool { return r.Path == authserver.PathAuth && r.Status == http.StatusOK })
			require.True(t, ok, "no successful auth request in the first boot")
			assert.Less(t, cut, authOK, "the agent authenticated only after the outage ended")
			assertForwarded(t, boot1, 0, dev.ID)

			// Boot 2: same disk, server up.
			authCount := dev.AuthCount
			second := m.boot(2)
			assertChecks(t, second, bootChecks(a, 2))
			log := srv.RequestLog()
			devs = srv.Devices()
			require.Len(t, devs, 1, "the second boot must not make a new device")
			assert.Equal(t, dev.PubKey, devs[0].PubKey, "the same public key reaches the server after the reboot")
			assert.Greater(t, devs[0].AuthCount, authCount, "the fetch in the second boot authenticated again")
			assert.Equal(t, first.values["key_fingerprint"], second.values["key_fingerprint"])
			assert.Equal(t, dev.ID, second.values["first_sub"], "the cached token is the device's")
			assert.Equal(t, dev.ID, second.values["fetched_sub"])

			next := assertForwarded(t, log, len(boot1), dev.ID)
			if auth, ok := indexOf(log, len(boot1), func(r authserver.Request) bool { return r.Path == authserver.PathAuth }); ok {
				assert.Less(t, next, auth, "the second boot used the cached token: no auth request before the consumer's first API call")
			}
		})
	}
}

// bootChecks lists the QT-CHECK lines the guest's /init must have passed in
// boot n, so a check that silently stops running fails the test too.
func bootChecks(a guestArch, n int) []string {
	checks := []string{
		"system_bus", "agent_has_token", "agent_not_restarted", "key_mode_0600",
		"forwarder_url_loopback", "forwarder_request", "fetch_token", "get_token_after_fetch",
		"nonroot_refused", "agent_clean_exit", "token_cache_written",
	}
	if n == 1 {
		checks = append(checks, "disk_formatted")
	} else {
		checks = append(checks, "key_persisted", "token_cache_persisted")
	}
	if a.tpm {
		checks = append(checks, "key_is_tss2", "no_software_private_key")
	}
	return checks
}

func assertChecks(t *testing.T, r bootResult, want []string) {
	t.Helper()
	for _, name := range want {
		assert.Equal(t, "ok", r.checks[name], "guest check %s", name)
	}
}

// indexOf returns the index of the first request at or after from that
// matches.
func indexOf(log []authserver.Request, from int, match func(authserver.Request) bool) (int, bool) {
	for i := from; i < len(log); i++ {
		if match(log[i]) {
			return i, true
		}
	}
	return 0, false
}

// assertForwarded checks that a consumer's request went through the
// loopback forwarder to the server with the device's token, and returns its
// index in log.
func assertForwarded(t *testing.T, log []authserver.Request, from int, deviceID string) int {
	t.Helper()
	i, ok := indexOf(log, from, func(r authserver.Request) bool { return r.Path == authserver.PathDeploymentsNext })
	require.True(t, ok, "no request reached the server through the forwarder")
	r := log[i]
	assert.Equal(t, http.StatusNoContent, r.Status)
	assert.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "), "the forwarded request carries the token")
	assert.Equal(t, deviceID, r.DeviceID, "the server accepted the forwarded token as the device's")
	return i
}
