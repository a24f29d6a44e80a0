package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
)

// DefaultDevice is the kernel TPM with its resource manager, which flushes
// our transient objects when the process exits.
const DefaultDevice = "/dev/tpmrm0"

// unixPrefix selects a swtpm (or other TPM emulator) Unix socket.
const unixPrefix = "unix:"

// Open opens the TPM named by device: a character device such as
// /dev/tpmrm0 (preferred) or /dev/tpm0 (exclusive, no resource manager), or
// "unix:PATH" for a swtpm socket. An empty device means DefaultDevice. A
// missing device yields an error wrapping ErrNoDevice.
//
// The returned transport retries TPM_RC_RETRY, TPM_RC_YIELDED and
// TPM_RC_TESTING with a bounded backoff. It is not safe for concurrent use;
// the caller owns it and must Close it.
func Open(device string) (transport.TPMCloser, error) {
	t, err := openRaw(device)
	if err != nil {
		return nil, err
	}
	return &retryCloser{retryTPM: retryTPM{ctx: context.Background(), next: t, sleep: sleepCtx}, c: t}, nil
}

func openRaw(device string) (transport.TPMCloser, error) {
	if device == "" {
		device = DefaultDevice
	}
	var (
		t   transport.TPMCloser
		err error
	)
	if path, ok := strings.CutPrefix(device, unixPrefix); ok {
		if path == "" {
			return nil, fmt.Errorf("open TPM %q: empty socket path after %q", device, unixPrefix)
		}
		t, err = linuxudstpm.Open(path)
	} else {
		t, err = linuxtpm.Open(device)
	}
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open TPM %s: %w: the device does not exist; enable the TPM in firmware and the kernel (tpm_tis, tpm_crb or the fTPM driver), or use the file key backend", device, ErrNoDevice)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("open TPM %s: permission denied; run mender-agent as root or give its user access to the device (group tss): %w", device, err)
	case errors.Is(err, linuxtpm.ErrFileIsNotDevice), errors.Is(err, linuxudstpm.ErrFileIsNotSocket):
		return nil, fmt.Errorf("open TPM %s: not a TPM character device or socket; set the TPM device to /dev/tpmrm0 or unix:PATH: %w", device, err)
	}
	return nil, fmt.Errorf("open TPM %s: %w", device, err)
}

// device is one shared, serialized connection to a TPM. Raw devices admit a
// single opener, and commands of different keys must not interleave with
// each other's retries, so all keys on one device share it.
type device struct {
	name     string
	mu       sync.Mutex // serializes every command sent through t
	t        transport.TPM
	injected bool // t belongs to the caller: never closed here
	refs     int  // guarded by devices.mu
}

// devices maps a device name to its shared connection while any key uses it.
var devices = struct {
	mu sync.Mutex
	m  map[string]*device
}{m: map[string]*device{}}

// acquire returns the shared connection for name, opening it if needed,
// or registering injected (the caller's open TPM) under name.
// Callers pass the name after Options.defaults, so it is never empty.
func acquire(name string, injected transport.TPM) (*device, error) {
	devices.mu.Lock()
	defer devices.mu.Unlock()
	if d, ok := devices.m[name]; ok {
		if d.injected != (injected != nil) || (injected != nil && d.t != injected) {
			return nil, fmt.Errorf("TPM %s is already in use through another connection; use one Transport per device name", name)
		}
		d.refs++
		return d, nil
	}
	d := &device{name: name, t: injected, injected: injected != nil, refs: 1}
	if injected == nil {
		t, err := openRaw(name)
		if err != nil {
			return nil, err
		}
		d.t = t
	}
	devices.m[name] = d
	return d, nil
}

// release drops one reference and closes the connection with the last one.
func (d *device) release() error {
	devices.mu.Lock()
	defer devices.mu.Unlock()
	d.refs--
	if d.refs > 0 {
		return nil
	}
	delete(devices.m, d.name)
	c, ok := d.t.(io.Closer)
	if d.injected || !ok {
		return nil
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close TPM %s: %w", d.name, err)
	}
	return nil
}

// tpm returns a transport that retries transient TPM warnings until ctx is
// done. The caller must hold d.mu while using it.
func (d *device) tpm(ctx context.Context) transport.TPM {
	return retryTPM{ctx: ctx, next: d.t, sleep: sleepCtx}
}

// Retry policy for TPM warnings that ask the caller to try again.
const (
	retryFirst = 2 * time.Millisecond
	retryMax   = 500 * time.Millisecond
	retryTries = 40 // ~15 s in total, enough for a TPM self test
)

// retryTPM resends a command while the TPM answers TPM_RC_RETRY,
// TPM_RC_YIELDED or TPM_RC_TESTING. The commands the package sends use
// password sessions only, so resending the same bytes is safe.
type retryTPM struct {
	ctx   context.Context
	next  transport.TPM
	sleep func(context.Context, time.Duration) error
}

func (r retryTPM) Send(cmd []byte) ([]byte, error) {
	wait := retryFirst
	for try := 1; ; try++ {
		rsp, err := r.next.Send(cmd)
		if err != nil || try == retryTries || !retryable(rsp) {
			return rsp, err
		}
		if err := r.sleep(r.ctx, wait); err != nil {
			return nil, fmt.Errorf("TPM busy (%s), gave up: %w", tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])), err)
		}
		wait = min(2*wait, retryMax)
	}
}

// retryable reports whether a response carries a try-again warning.
func retryable(rsp []byte) bool {
	if len(rsp) < 10 {
		return false
	}
	switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])) {
	case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting:
		return true
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type retryCloser struct {
	retryTPM
	c transport.TPMCloser
}

func (r *retryCloser) Close() error { return r.c.Close() }
