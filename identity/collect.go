package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of Options.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultMaxOutput = 64 << 10
)

// Bounds on what an error quotes from the script's stderr.
const (
	stderrKeep  = 4 << 10
	stderrLines = 5
)

// waitDelay is how long Collect waits for the script's output pipes to close
// after the script was killed or exited, in case a descendant that left the
// process group still holds them.
const waitDelay = 2 * time.Second

// Log field names used by this package.
const (
	fieldScript = "script"
	fieldStderr = "stderr"
)

// ErrTimeout means the script did not finish within Options.Timeout; it was
// killed together with its process group.
var ErrTimeout = errors.New("identity script timed out")

// ErrOutputTooLarge means the script printed more than Options.MaxOutput
// bytes on stdout; it was stopped.
var ErrOutputTooLarge = errors.New("identity script output too large")

// Options configures Collect. The zero value runs DefaultScript with the
// default limits.
type Options struct {
	// Script is the executable to run; empty means DefaultScript().
	Script string
	// Timeout bounds the script's run time; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxOutput bounds the script's stdout in bytes; 0 means
	// DefaultMaxOutput.
	MaxOutput int
	// Logger receives debug notes (the script's stderr on success); nil
	// discards them.
	Logger logrus.FieldLogger
}

// ScriptError is a failed run of the identity script. Its message quotes the
// script path, how it ended and the first lines of its stderr.
type ScriptError struct {
	Script string
	// Status is how the script ended: "exit status 3", "killed by signal
	// 9", "not started", or "exit status 0" when its output was the problem.
	Status string
	// Stderr holds the first lines of the script's stderr.
	Stderr []string
	Err    error
}

func (e *ScriptError) Error() string {
	var b strings.Builder
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		fmt.Fprintf(&b, "identity script %s: %s", e.Script, e.Status)
	} else {
		fmt.Fprintf(&b, "identity script %s: %v (%s)", e.Script, e.Err, e.Status)
	}
	if len(e.Stderr) > 0 {
		b.WriteString("; stderr: ")
		for i, l := range e.Stderr {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(strconv.Quote(l))
		}
	}
	return b.String()
}

func (e *ScriptError) Unwrap() error { return e.Err }

// Collect runs the identity script and parses its output. The script runs
// in its own process group with the caller's environment and no stdin; on
// timeout, on cancellation of ctx, or when its output exceeds the bound, the
// whole group is killed so no descendant outlives the call. Collect blocks
// until the script is gone; it is safe for concurrent use. Failures are
// *ScriptError values wrapping ErrTimeout, ErrOutputTooLarge, ErrMalformed,
// ErrNoData or the exit error; cancellation of ctx returns ctx.Err()
// wrapped.
func Collect(ctx context.Context, opts Options) (Data, error) {
	script := opts.Script
	if script == "" {
		script = DefaultScript()
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxOut := opts.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(runCtx, script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Past the bound, stop the script at once rather than at the timeout.
	stdout := &boundedBuffer{max: maxOut, overflowErr: ErrOutputTooLarge, onOverflow: cancel}
	stderr := &boundedBuffer{max: stderrKeep}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = waitDelay

	fail := func(status string, err error) (Data, error) {
		return nil, &ScriptError{Script: script, Status: status, Stderr: firstLines(stderr.Bytes()), Err: err}
	}

	if err := cmd.Start(); err != nil {
		return fail("not started", err)
	}
	waitErr := cmd.Wait()
	// A finished script may have left descendants in its group; they are
	// of no use once the script is done.
	_ = killGroup(cmd)

	status := "exit status 0"
	if cmd.ProcessState != nil {
		status = describe(cmd.ProcessState)
	}
	switch {
	case stdout.overflow:
		return fail(status, fmt.Errorf("%w: more than %d bytes on stdout", ErrOutputTooLarge, maxOut))
	case ctx.Err() != nil:
		return nil, fmt.Errorf("identity script %s: %w", script, ctx.Err())
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return fail(status, fmt.Errorf("%w: no answer within %s; killed it and its process group", ErrTimeout, timeout))
	case waitErr != nil:
		return fail(status, waitErr)
	}
	d, err := Parse(stdout.Bytes())
	if err != nil {
		return fail(status, err)
	}
	if lines := firstLines(stderr.Bytes()); len(lines) > 0 {
		log.WithField(fieldScript, script).WithField(fieldStderr, strings.Join(lines, " | ")).
			Debug("identity script wrote to stderr")
	}
	return d, nil
}

// killGroup kills the script's process group. The group id is the script's
// pid because of Setpgid.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func describe(ps interface {
	ExitCode() int
	Sys() any
}) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + strconv.Itoa(int(ws.Signal())) + " (" + ws.Signal().String() + ")"
	}
	return "exit status " + strconv.Itoa(ps.ExitCode())
}

// firstLines returns up to stderrLines non-empty lines of b, each bounded.
func firstLines(b []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(l) > maxQuote {
			l = l[:maxQuote] + "..."
		}
		lines = append(lines, l)
		if len(lines) == stderrLines {
			break
		}
	}
	return lines
}

// boundedBuffer keeps the first max bytes written to it. With overflowErr
// set, a write past the bound fails (which closes the pipe and stops the
// writer); otherwise the excess is dropped silently.
type boundedBuffer struct {
	buf         bytes.Buffer
	max         int
	overflow    bool
	overflowErr error
	onOverflow  func()
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	b.buf.Write(p[:max(room, 0)])
	if !b.overflow && b.onOverflow != nil {
		b.onOverflow()
	}
	b.overflow = true
	if b.overflowErr != nil {
		return max(room, 0), b.overflowErr
	}
	return len(p), nil
}

func (b *boundedBuffer) Bytes() []byte { return b.buf.Bytes() }
