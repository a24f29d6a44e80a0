package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErr    string
		notWantErr string
	}{
		{name: "no command", args: nil, wantCode: exitUsage, wantErr: "no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage, wantErr: `unknown command "frobnicate"`},
		{name: "unknown global flag", args: []string{"--nope", "daemon"}, wantCode: exitUsage, wantErr: "flag provided but not defined: -nope"},
		{name: "unknown command flag", args: []string{"show-key", "--nope"}, wantCode: exitUsage, wantErr: "-nope"},
		{name: "top help", args: []string{"--help"}, wantCode: exitOK, wantOut: "Usage: mender-agent [global options] COMMAND"},
		{name: "help command", args: []string{"help", "bootstrap"}, wantCode: exitOK, wantOut: "--forcebootstrap"},
		{name: "version flag", args: []string{"--version"}, wantCode: exitOK, wantOut: "mender-agent dev"},
		{name: "version short flag", args: []string{"-v"}, wantCode: exitOK, wantOut: "mender-agent dev"},
		{name: "version command", args: []string{"version"}, wantCode: exitOK, wantOut: "mender-agent dev"},
		{name: "daemon arguments", args: []string{"daemon", "extra"}, wantCode: exitUsage, wantErr: "daemon takes no arguments"},
		{name: "bad log level", args: []string{"-l", "loud", "show-key"}, wantCode: exitUsage, wantErr: `--log-level "loud"`},
		{name: "provision bad export", args: []string{"provision", "--export", "xml"}, wantCode: exitUsage, wantErr: `--export "xml": want json or csv`},
		{name: "token bad wait", args: []string{"token", "--wait", "soon"}, wantCode: exitUsage, wantErr: `want a positive duration`},
		{name: "verify-artifact without file", args: []string{"verify-artifact"}, wantCode: exitUsage, wantErr: "exactly one FILE"},
		{name: "explicit config missing", args: []string{"-c", "/nonexistent/mender.conf", "show-key"}, wantCode: exitFailure, wantErr: "/nonexistent/mender.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			assert.Equal(t, tt.wantCode, code, "stdout: %s\nstderr: %s", out, errOut)
			if tt.wantOut != "" {
				assert.Contains(t, out, tt.wantOut)
			}
			if tt.wantErr != "" {
				assert.Contains(t, errOut, tt.wantErr)
			}
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := runCLI(t, c.name, "--help")
			assert.Equal(t, exitOK, code)
			assert.Contains(t, out, "Usage: mender-agent "+c.name)
			// Global options are listed for every command.
			assert.Contains(t, out, "-c, --config FILE")
			assert.Contains(t, out, "-E, --trusted-certs FILE")
			code, out, _ = runCLI(t, c.name, "-h")
			assert.Equal(t, exitOK, code)
			assert.Contains(t, out, "Usage: mender-agent "+c.name)
		})
	}
}

func TestGlobalOptionsAfterCommand(t *testing.T) {
	g := &globals{}
	o := newOptions("x")
	g.register(o)
	err := o.parse([]string{"-c", "/a.conf", "--data", "/d", "-E", "/ca.crt", "--skipverify"}, func() {})
	assert.NoError(t, err)
	assert.Equal(t, "/a.conf", g.configPath)
	assert.Equal(t, "/d", g.dataDir)
	assert.Equal(t, "/ca.crt", g.trustedCerts)
	assert.True(t, g.skipVerify)
}

func TestDefaultPathsFollowEnvironment(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		g            globals
		wantMain     string
		wantFallback string
		wantData     string
	}{
		{name: "defaults", wantMain: "/etc/mender/mender.conf", wantFallback: "/var/lib/mender/mender.conf", wantData: "/var/lib/mender"},
		{name: "environment", env: map[string]string{"MENDER_CONF_DIR": "/c", "MENDER_DATASTORE_DIR": "/s"},
			wantMain: "/c/mender.conf", wantFallback: "/s/mender.conf", wantData: "/s"},
		{name: "flags win", env: map[string]string{"MENDER_CONF_DIR": "/c", "MENDER_DATASTORE_DIR": "/s"},
			g:        globals{configPath: "/x.conf", dataDir: "/dd"},
			wantMain: "/x.conf", wantFallback: "/dd/mender.conf", wantData: "/dd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.g
			g.env = func(k string) string { return tt.env[k] }
			m, _ := g.mainConfig()
			f, _ := g.fallbackConfig()
			assert.Equal(t, tt.wantMain, m)
			assert.Equal(t, tt.wantFallback, f)
			assert.Equal(t, tt.wantData, g.datastore())
		})
	}
}

func TestJournalFormatterHasNoTimestamps(t *testing.T) {
	var buf bytes.Buffer
	g := &globals{env: func(k string) string {
		if k == "JOURNAL_STREAM" {
			return "8:1234"
		}
		return ""
	}}
	f := newFormatter(g.getenv)
	l := newTestLogger(&buf, f)
	l.Info("hello")
	assert.NotContains(t, buf.String(), "time=")
	buf.Reset()
	l = newTestLogger(&buf, newFormatter(func(string) string { return "" }))
	l.Info("hello")
	assert.Contains(t, buf.String(), "time=")
}

func TestInterruptedCommandFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	dir := t.TempDir()
	conf := writeConf(t, dir, map[string]any{"ServerURL": "https://127.0.0.1:1"})
	code := run(ctx, []string{"-c", conf, "-d", filepath.Join(dir, "data"), "bootstrap"}, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	assert.Equal(t, exitFailure, code, errb.String())
	assert.Contains(t, errb.String(), "interrupted")
	assert.NotContains(t, out.String(), "authenticated")
}
