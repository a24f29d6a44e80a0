// Command mender-agent is the device-side identity and trust daemon for the
// Mender OTA server: a drop-in replacement for mender-auth.
//
// The command owns flag parsing, turning mender.conf into each package's
// options, choosing the key backend, and running the components together.
// It is the only place that calls os.Exit. Nothing imports it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// version and buildTime are stamped by the linker (-X main.version=...,
// -X main.buildTime=RFC 3339 time); buildTime is also the floor the agent
// uses to decide whether the system clock has been set.
var (
	version   = "dev"
	buildTime = ""
)

// usageError marks a command-line mistake; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries a specific exit status (for example verify-artifact's
// "invalid" status 1 vs "unreadable key" status 2) with a message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}

// stdio is the command's standard streams, injected for tests.
type stdio struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, args []string, std stdio) int {
	err := dispatch(ctx, args, std)
	return exitCode(err, std.err)
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelpShown) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "mender-agent: %s\nRun 'mender-agent --help' for usage.\n", ue.msg)
		return exitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "mender-agent:", ee.err)
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		// Only the daemon treats SIGTERM/SIGINT as a normal end; any
		// other command that was interrupted did not finish its work.
		fmt.Fprintln(stderr, "mender-agent: interrupted before the command finished")
		return exitFailure
	}
	fmt.Fprintln(stderr, "mender-agent:", err)
	return exitFailure
}
