package e2e

import (
	"bufio"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/mender-agent/mender-agent/test/testpki"
)

func TestAuthenticatesAndServesToken(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true})
	e.startDaemon()
	r := e.fetchToken()

	assert.True(t, strings.HasPrefix(r.ServerURL, "http://127.0.0.1:"), "server_url must be the loopback forwarder, got %q", r.ServerURL)
	assert.Empty(t, r.Token, "the raw token is printed only with --raw")
	devs := e.server.Devices()
	require.Len(t, devs, 1)
	assert.Equal(t, devs[0].ID, r.Claims["sub"], "the token's subject is the device the server accepted")
	assert.Equal(t, `{"mac":"02:00:5e:10:00:01","serial":"E2E-1"}`, devs[0].Identity)

	// The key was created on first start: PKCS#8 Ed25519, mode 0600, and it
	// is the key the server saw.
	keyPath := filepath.Join(e.dataDir, "mender-agent.pem")
	fi, err := os.Stat(keyPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	data, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----"))
	out, err := e.run("show-key", "--json")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"ed25519"`)
	assert.Equal(t, strings.TrimSpace(devs[0].PubKey), strings.TrimSpace(jsonField(t, out, "public_key")))

	// A consumer reaches the server through the forwarder with the token.
	raw := e.fetchToken("--raw")
	req, err := http.NewRequest(http.MethodGet, raw.ServerURL+authserver.PathDeploymentsNext, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+raw.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	// The forwarder refuses the authentication endpoint.
	resp, err = http.Post(raw.ServerURL+authserver.PathAuth, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestStockToolsSeeTheAPI(t *testing.T) {
	busctl := testenv.LookPath(t, "busctl")
	e := newEnv(t, envOptions{autoAccept: true})
	e.startDaemon()
	raw := e.fetchToken("--raw")
	cmd := exec.Command(busctl, "--address="+e.bus.Address, "call", "io.mender.AuthenticationManager",
		"/io/mender/AuthenticationManager", "io.mender.Authentication1", "GetJwtToken")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, `ss "`+raw.Token+`" "`+raw.ServerURL+`"`, strings.TrimSpace(string(out)))
}

func TestNoSecretsInLogs(t *testing.T) {
	const tenant = "tenant-SECRET-0123456789abcdef"
	e := newEnv(t, envOptions{autoAccept: true, conf: map[string]any{"TenantToken": tenant, "DaemonLogLevel": "debug"}})
	d := e.startDaemon("-l", "trace")
	e.fetchToken()
	// Learn the token the way a consumer does, outside the scanned output.
	raw := e.fetchToken("--raw")
	e.outputs = e.outputs[:len(e.outputs)-1]
	require.NotEmpty(t, raw.Token)
	require.NoError(t, d.stop(t))

	keyPEM, err := os.ReadFile(filepath.Join(e.dataDir, "mender-agent.pem"))
	require.NoError(t, err)
	secrets := map[string]string{"tenant token": tenant}
	parts := strings.Split(raw.Token, ".")
	require.Len(t, parts, 3)
	secrets["jwt"] = raw.Token
	secrets["jwt payload"] = parts[1]
	secrets["jwt signature"] = parts[2]
	sc := bufio.NewScanner(strings.NewReader(string(keyPEM)))
	for sc.Scan() {
		if l := sc.Text(); !strings.HasPrefix(l, "-----") {
			secrets["private key line"] = l
			der, _ := base64.StdEncoding.DecodeString(l)
			secrets["private key base64url"] = base64.RawURLEncoding.EncodeToString(der)
		}
	}
	all := e.allOutput()
	require.Contains(t, all, "level=debug", "the scan is meaningful only if debug output was produced")
	for what, s := range secrets {
		assert.NotContains(t, all, s, "the %s appears in the output", what)
	}
	assert.NotContains(t, all, "PRIVATE KEY")
	// The tenant token reached the server, so it was really in use.
	devs := e.server.Devices()
	require.Len(t, devs, 1)
	assert.Equal(t, tenant, devs[0].TenantToken)
}

func TestRestartReusesKeyAndCachedToken(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true})
	d := e.startDaemon()
	first := e.fetchToken("--raw")
	require.NoError(t, d.stop(t))
	before := e.authRequests()

	e.startDaemon()
	var second tokenReport
	require.Eventually(t, func() bool {
		out, err := e.run("token", "--json", "--raw")
		if err != nil {
			return false
		}
		second = decodeReport(t, out)
		return second.Token != ""
	}, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, first.Token, second.Token, "a cached token with life left is reused")
	assert.Equal(t, before, e.authRequests(), "a restart with a valid cached token sends no auth request")
	assert.Len(t, e.server.Devices(), 1, "the same key is kept: no new pending device")
}

func TestPendingThenAccepted(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: false})
	e.startDaemon()
	out, err := e.run("token", "--fetch", "--wait", "30s")
	require.Error(t, err, out)
	assert.Contains(t, out, "no token")
	devs := e.server.Devices()
	require.Len(t, devs, 1)
	assert.Equal(t, authserver.StatusPending, devs[0].Status)

	require.NoError(t, e.server.Accept(devs[0].ID))
	r := e.fetchToken()
	assert.Equal(t, devs[0].ID, r.Claims["sub"])
}

func TestServerDownAtBootThenRecovers(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true})
	e.server.SetOutage(true)
	e.startDaemon()
	require.Eventually(t, func() bool { return e.authRequests() >= 1 }, 30*time.Second, 50*time.Millisecond,
		"the agent authenticates at start and keeps retrying")
	out, err := e.run("token")
	require.Error(t, err, "no token while the server is down: %s", out)

	e.server.SetOutage(false)
	r := e.fetchToken()
	assert.NotEmpty(t, r.Claims["sub"], "the agent recovers without a restart")
}

func TestSIGHUPKeepsToken(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true})
	d := e.startDaemon()
	before := e.fetchToken("--raw")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(d.out.String(), "reloading configuration") }, 30*time.Second, 50*time.Millisecond)
	out, err := e.run("token", "--json", "--raw")
	require.NoError(t, err, out)
	after := decodeReport(t, out)
	assert.Equal(t, before.Token, after.Token, "a reload keeps the valid token")
	select {
	case err := <-d.done:
		t.Fatalf("daemon exited on SIGHUP: %v", err)
	default:
	}
}

func TestDemoRunsOnce(t *testing.T) {
	testenv.LookPath(t, "dbus-daemon")
	srvBin := filepath.Join(t.TempDir(), "mender-testserver")
	build := exec.Command("go", "build", "-o", srvBin, "github.com/mender-agent/mender-agent/test/cmd/mender-testserver")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "demo.sh"), "--once")
	cmd.Env = append(os.Environ(), "MENDER_AGENT_BIN="+agentBin, "MENDER_TESTSERVER_BIN="+srvBin)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	s := string(out)
	assert.Contains(t, s, "SHA256")
	assert.Contains(t, s, "mac=02:00:5e:10:00:01")
	assert.Contains(t, s, "server_url: http://127.0.0.1:")
	assert.Contains(t, s, `iss: "Mender"`)
	assert.Contains(t, s, "from daemon start to token at the consumer:")
}

// TestSIGHUPAppliesNewTrustSettings: a configuration that points at the
// wrong CA fails; after the configuration names the right bundle and the
// daemon gets SIGHUP, it authenticates without a restart.
func TestSIGHUPAppliesNewTrustSettings(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true})
	right := e.conf["ServerCertificate"].(string)
	wrong := testpki.WriteFile(filepath.Join(e.dir, "wrong.crt"), testpki.NewCA("some other CA").CertPEM())
	e.conf["ServerCertificate"] = wrong
	e.writeConf()
	d := e.startDaemon()
	require.Eventually(t, func() bool { return strings.Contains(d.out.String(), "unknown authority") }, 30*time.Second, 50*time.Millisecond,
		"the agent must fail with the unknown-authority hint")
	assert.Contains(t, d.out.String(), "ServerCertificate", "the hint names the setting to fix")

	e.conf["ServerCertificate"] = right
	e.writeConf()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	r := e.fetchToken()
	assert.NotEmpty(t, r.Claims["sub"])
	assert.Contains(t, d.out.String(), "trust settings changed")
}

// TestConsumer401TriggersReauthentication: when the server stops accepting
// the token (here: the device was rejected), a consumer's request through
// the forwarder gets 401, and the agent re-authenticates at once instead of
// waiting for its renewal time; the rejection then drops the token.
func TestConsumer401TriggersReauthentication(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true})
	e.startDaemon()
	raw := e.fetchToken("--raw")
	before := e.authRequests()
	devs := e.server.Devices()
	require.Len(t, devs, 1)
	require.NoError(t, e.server.Reject(devs[0].ID))

	req, err := http.NewRequest(http.MethodGet, raw.ServerURL+authserver.PathDeploymentsNext, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+raw.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	require.Eventually(t, func() bool { return e.authRequests() > before }, 30*time.Second, 50*time.Millisecond,
		"the consumer's 401 makes the agent authenticate again (the token had an hour left)")
	require.Eventually(t, func() bool {
		out, err := e.run("token")
		return err != nil && strings.Contains(out, "no token")
	}, 30*time.Second, 100*time.Millisecond, "the rejected device's token is dropped")
}

func TestDBusDisabledIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{autoAccept: true, conf: map[string]any{"DBus": map[string]any{"Enabled": false}}})
	d := e.startDaemon()
	select {
	case err := <-d.done:
		d.done <- err
		require.Error(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon must refuse to run without D-Bus")
	}
	assert.Contains(t, d.out.String(), "DBus.Enabled is false")
	assert.Zero(t, e.authRequests(), "nothing is done before the configuration is refused")
}
