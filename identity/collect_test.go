package identity

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeScript writes an executable /bin/sh script into dir and returns its
// path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func TestCollect(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		maxOutput  int
		want       Data
		wantErr    error
		wantStatus string
		wantMsg    []string
		notMsg     []string
	}{
		{
			name: "success",
			body: "echo mac=02:12:61:13:6c:42\necho cpuid=1234\necho mac=02:12:61:13:6c:43\n",
			want: Data{"mac": {"02:12:61:13:6c:42", "02:12:61:13:6c:43"}, "cpuid": {"1234"}},
		},
		{
			name: "success with stderr chatter",
			body: "echo 'using interface eth0' >&2\necho mac=a\n",
			want: Data{"mac": {"a"}},
		},
		{
			name:       "non-zero exit quotes status and stderr, discards output",
			body:       "echo mac=a\necho 'cannot read /sys/class/net' >&2\necho 'second line' >&2\nexit 3\n",
			wantStatus: "exit status 3",
			wantMsg:    []string{"exit status 3", `"cannot read /sys/class/net" | "second line"`},
		},
		{
			name:       "only the first stderr lines are quoted",
			body:       "for i in 1 2 3 4 5 6 7 8; do echo \"err$i\" >&2; done\nexit 1\n",
			wantStatus: "exit status 1",
			wantMsg:    []string{`"err1"`, `"err5"`},
			notMsg:     []string{"err6"},
		},
		{
			name:       "killed by a signal",
			body:       "kill -SEGV $$\n",
			wantStatus: "killed by signal 11 (segmentation fault)",
			wantMsg:    []string{"killed by signal 11"},
		},
		{
			name:       "malformed output",
			body:       "echo mac=a\necho oops\n",
			wantErr:    ErrMalformed,
			wantStatus: "exit status 0",
			wantMsg:    []string{"line 2", `"oops"`},
		},
		{
			name:       "no output",
			body:       "echo 'nothing to say' >&2\n",
			wantErr:    ErrNoData,
			wantStatus: "exit status 0",
			wantMsg:    []string{"no identity data", `"nothing to say"`},
		},
		{
			name:      "output over the bound",
			body:      "i=0\nwhile [ $i -lt 200 ]; do echo mac=0123456789abcdef; i=$((i+1)); done\n",
			maxOutput: 1024,
			wantErr:   ErrOutputTooLarge,
			wantMsg:   []string{"more than 1024 bytes"},
		},
		{
			// The script ignores SIGPIPE and keeps writing: only the kill on
			// overflow stops it (the timeout below is far away).
			name:      "endless output is stopped at the bound",
			body:      "trap '' PIPE\nwhile :; do echo mac=a; done 2>/dev/null\n",
			maxOutput: 4096,
			wantErr:   ErrOutputTooLarge,
			wantMsg:   []string{"more than 4096 bytes"},
		},
		{
			name:      "output exactly at the bound",
			body:      "printf 'k=%s' 12345678\n",
			maxOutput: 10,
			want:      Data{"k": {"12345678"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := writeScript(t, t.TempDir(), "mender-device-identity", tt.body)
			log, hook := test.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			d, err := Collect(context.Background(), Options{Script: script, MaxOutput: tt.maxOutput, Timeout: time.Hour, Logger: log})
			if tt.want != nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, d)
				return
			}
			require.Error(t, err)
			assert.Nil(t, d)
			var se *ScriptError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, script, se.Script)
			assert.Contains(t, err.Error(), script, "error quotes the script path")
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			if tt.wantStatus != "" {
				assert.Equal(t, tt.wantStatus, se.Status)
			}
			for _, m := range tt.wantMsg {
				assert.Contains(t, err.Error(), m)
			}
			for _, m := range tt.notMsg {
				assert.NotContains(t, err.Error(), m)
			}
			assert.Empty(t, hook.AllEntries(), "failures are returned, not logged")
		})
	}
}

func TestCollectLogsStderrOnSuccess(t *testing.T) {
	script := writeScript(t, t.TempDir(), "id", "echo 'using interface eth0' >&2\necho mac=a\n")
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	_, err := Collect(context.Background(), Options{Script: script, Logger: log})
	require.NoError(t, err)
	require.Len(t, hook.AllEntries(), 1)
	e := hook.LastEntry()
	assert.Equal(t, logrus.DebugLevel, e.Level)
	assert.Equal(t, script, e.Data[fieldScript])
	assert.Equal(t, "using interface eth0", e.Data[fieldStderr])
}

func TestCollectStartFailures(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\necho mac=a\n"), 0o644))
	tests := []struct {
		name    string
		script  string
		wantErr error
	}{
		{name: "missing", script: filepath.Join(dir, "missing"), wantErr: os.ErrNotExist},
		{name: "not executable", script: notExec, wantErr: os.ErrPermission},
		{name: "directory", script: dir, wantErr: os.ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Collect(context.Background(), Options{Script: tt.script})
			require.Error(t, err)
			var se *ScriptError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "not started", se.Status)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), tt.script)
		})
	}
}

func TestCollectDefaultScript(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "identity"), 0o755))
	writeScript(t, filepath.Join(dir, "identity"), "mender-device-identity", "echo serial=42\n")
	t.Setenv(DataDirEnv, dir)
	d, err := Collect(context.Background(), Options{})
	require.NoError(t, err)
	assert.Equal(t, `{"serial":"42"}`, d.JSON())
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestCollectTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The child keeps stdout open and would outlive a script killed alone.
	script := writeScript(t, dir, "hang", "echo mac=a\necho 'still thinking' >&2\nsleep 300 &\necho $! > "+pidFile+"\nwait\n")
	_, err := Collect(context.Background(), Options{Script: script, Timeout: 500 * time.Millisecond})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTimeout)
	var se *ScriptError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "killed by signal 9 (killed)", se.Status)
	assert.Contains(t, err.Error(), script)
	assert.Contains(t, err.Error(), "no answer within 500ms")
	assert.Contains(t, err.Error(), `"still thinking"`)

	raw, err := os.ReadFile(pidFile)
	require.NoError(t, err, "the script started its child")
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	// SIGKILL was sent to the group before Collect returned; the child is
	// gone once the kernel has run it.
	assert.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, 10*time.Millisecond, "child %d of the timed-out script leaked", pid)
}

func TestCollectCancel(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	script := writeScript(t, dir, "slow", "touch "+started+"\nexec sleep 300\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Collect(ctx, Options{Script: script, Timeout: time.Hour})
		done <- err
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, 10*time.Second, 5*time.Millisecond)
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, ErrTimeout))
	assert.Contains(t, err.Error(), script)
}

func TestShippedScriptUnderCollect(t *testing.T) {
	script, err := filepath.Abs("mender-device-identity")
	require.NoError(t, err)
	fi, err := os.Stat(script)
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&0o111, "the shipped script must be executable")
	_, err = exec.LookPath("/bin/sh")
	require.NoError(t, err)
	d, err := Collect(context.Background(), Options{Script: script})
	if err != nil {
		// A machine without a usable interface: the error must say why.
		var se *ScriptError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "exit status 1", se.Status)
		assert.Contains(t, err.Error(), "no Ethernet-type interface")
		return
	}
	require.Len(t, d, 1)
	require.Len(t, d["mac"], 1)
	assert.Regexp(t, `^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`, d["mac"][0])
}
