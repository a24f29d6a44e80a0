package identity

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// iface is one fake /sys/class/net entry.
type iface struct {
	name, typ, ifindex, address, assign string
}

// fakeNet builds a /sys/class/net look-alike; an empty assign leaves the
// addr_assign_type file out, as on old kernels.
func fakeNet(t *testing.T, ifaces []iface) string {
	t.Helper()
	dir := t.TempDir()
	for _, i := range ifaces {
		d := filepath.Join(dir, i.name)
		require.NoError(t, os.Mkdir(d, 0o755))
		for name, v := range map[string]string{"type": i.typ, "ifindex": i.ifindex, "address": i.address, "addr_assign_type": i.assign} {
			if v == "" {
				continue
			}
			require.NoError(t, os.WriteFile(filepath.Join(d, name), []byte(v+"\n"), 0o644))
		}
	}
	return dir
}

// runShipped runs the shipped script with /bin/sh against netDir.
func runShipped(t *testing.T, netDir string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("/bin/sh", "mender-device-identity", netDir)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &ee)
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func TestShippedScript(t *testing.T) {
	eth0 := iface{name: "eth0", typ: "1", ifindex: "2", address: "02:12:61:13:6c:42", assign: "0"}
	tests := []struct {
		name       string
		ifaces     []iface
		wantOut    string
		wantCode   int
		wantStderr string
	}{
		{name: "single ethernet", ifaces: []iface{eth0}, wantOut: "mac=02:12:61:13:6c:42\n", wantStderr: "using interface eth0"},
		{
			name: "lowest ifindex wins, numerically",
			ifaces: []iface{
				{name: "eth1", typ: "1", ifindex: "10", address: "02:00:00:00:00:10", assign: "0"},
				{name: "wlan0", typ: "1", ifindex: "9", address: "02:00:00:00:00:09", assign: "0"},
			},
			wantOut: "mac=02:00:00:00:00:09\n",
		},
		{
			name: "loopback, non-ethernet and dummy skipped",
			ifaces: []iface{
				{name: "lo", typ: "772", ifindex: "1", address: "00:00:00:00:00:00", assign: "0"},
				{name: "dummy0", typ: "1", ifindex: "2", address: "02:00:00:00:00:02", assign: "3"},
				{name: "sit0", typ: "776", ifindex: "3", address: "00:00:00:00", assign: "0"},
				{name: "can0", typ: "280", ifindex: "4", address: "", assign: "0"},
				{name: "enp1s0", typ: "1", ifindex: "5", address: "02:00:00:00:00:05", assign: "0"},
			},
			wantOut: "mac=02:00:00:00:00:05\n",
		},
		{
			name: "random address avoided when a stable one exists",
			ifaces: []iface{
				{name: "ifb0", typ: "1", ifindex: "2", address: "72:34:9a:5d:73:5b", assign: "1"},
				{name: "eth0", typ: "1", ifindex: "4", address: "02:fc:00:00:00:01", assign: "0"},
			},
			wantOut: "mac=02:fc:00:00:00:01\n",
		},
		{
			name: "random address used as a last resort, with a warning",
			ifaces: []iface{
				{name: "veth1", typ: "1", ifindex: "7", address: "72:00:00:00:00:07", assign: "1"},
				{name: "veth0", typ: "1", ifindex: "6", address: "72:00:00:00:00:06", assign: "1"},
			},
			wantOut:    "mac=72:00:00:00:00:06\n",
			wantStderr: "changes at every boot",
		},
		{
			name:    "old kernel without addr_assign_type",
			ifaces:  []iface{{name: "eth0", typ: "1", ifindex: "2", address: "02:00:00:00:00:02"}},
			wantOut: "mac=02:00:00:00:00:02\n",
		},
		{
			name: "all-zero address skipped",
			ifaces: []iface{
				{name: "eth0", typ: "1", ifindex: "2", address: "00:00:00:00:00:00", assign: "0"},
				{name: "eth1", typ: "1", ifindex: "3", address: "02:00:00:00:00:03", assign: "0"},
			},
			wantOut: "mac=02:00:00:00:00:03\n",
		},
		{
			name:       "nothing suitable",
			ifaces:     []iface{{name: "lo", typ: "772", ifindex: "1", address: "00:00:00:00:00:00", assign: "0"}},
			wantCode:   1,
			wantStderr: "no Ethernet-type interface",
		},
		{name: "empty directory", wantCode: 1, wantStderr: "no Ethernet-type interface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runShipped(t, fakeNet(t, tt.ifaces))
			assert.Equal(t, tt.wantCode, code)
			assert.Equal(t, tt.wantOut, out)
			assert.Contains(t, stderr, tt.wantStderr)
			if code == 0 {
				d, err := Parse([]byte(out))
				require.NoError(t, err)
				assert.Len(t, d["mac"], 1)
			}
		})
	}
}

func TestShippedScriptOnThisMachine(t *testing.T) {
	out, stderr, code := runShipped(t, "/sys/class/net")
	if code != 0 {
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, "no Ethernet-type interface", "a failure says why")
		assert.Empty(t, out)
		return
	}
	assert.Regexp(t, `^mac=[0-9a-f]{2}(:[0-9a-f]{2}){5}\n$`, out)
	assert.Contains(t, stderr, "interface")
}

func TestShippedScriptIsPOSIX(t *testing.T) {
	for _, sh := range []string{"/bin/sh", "dash", "busybox", "posh"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			args := []string{"-n", "mender-device-identity"}
			if filepath.Base(path) == "busybox" {
				args = append([]string{"sh"}, args...)
			}
			out, err := exec.Command(path, args...).CombinedOutput()
			assert.NoError(t, err, "syntax check: %s", out)
			assert.Empty(t, out)
		})
	}
	if p, err := exec.LookPath("checkbashisms"); err == nil {
		out, err := exec.Command(p, "mender-device-identity").CombinedOutput()
		assert.NoError(t, err, "checkbashisms: %s", out)
	}
}
