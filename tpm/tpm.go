package tpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/internal/atomicfile"
	"github.com/mender-agent/mender-agent/tpm/tss2"
)

// Log field names used by this package.
const (
	fieldKeyPath = "key_path"
	fieldDevice  = "tpm_device"
	fieldKeyType = "key_type"
	fieldMovedTo = "moved_to"
)

// clearedSuffix is put between the key path and the UTC time when a key
// file that this TPM can no longer load is moved aside.
const clearedSuffix = ".tpm-cleared-"

// Options configures LoadOrCreate and Load.
type Options struct {
	// Device is the TPM: "/dev/tpmrm0" when empty (recommended),
	// "/dev/tpm0" (exclusive, no resource manager), or "unix:PATH" for a
	// swtpm socket.
	Device string
	// Transport, when non-nil, is an already open TPM used instead of
	// opening Device (for example go-tpm's in-process simulator in tests,
	// or a connection the caller manages). The caller keeps ownership and
	// closes it after every Key using it is closed. Keys given the same
	// Transport share one mutex.
	Transport transport.TPM
	// Path is the key file, a "TSS2 PRIVATE KEY" PEM.
	Path string
	// Type is the key type to create: "" or "ecdsa-p256" (default),
	// "rsa-2048", or "rsa-3072" (only if the TPM supports it). "ed25519" is
	// a configuration error: TPMs lack it. Loading ignores Type.
	Type string
	// Generate allows creating a key when Path does not exist. Without it a
	// missing file is an error (a provisioned key is never replaced).
	Generate bool
	// RegenerateOnClear allows creating a new key after the old one was
	// found unloadable (TPM cleared or replaced) and moved aside.
	RegenerateOnClear bool
	// ParentPassword is the owner hierarchy authorization, needed only when
	// the owner hierarchy has a password. It never appears in logs.
	ParentPassword []byte
	// Logger receives state changes; nil discards them.
	Logger logrus.FieldLogger
	// Now gives the time used to name moved-aside files; nil means
	// time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Device == "" {
		o.Device = DefaultDevice
		if o.Transport != nil {
			o.Device = fmt.Sprintf("transport %p", o.Transport)
		}
	}
	if o.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		o.Logger = l
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// IsTSS2PEM reports whether data is a TPM key file (a PEM block of type
// "TSS2 PRIVATE KEY"), which selects this backend over the file backend.
func IsTSS2PEM(data []byte) bool { return tss2.IsPEM(data) }

// Load loads the key file at opts.Path into the TPM at opts.Device. It
// never creates, moves or writes files: a key this TPM cannot load yields
// ErrCleared, a missing file an error wrapping fs.ErrNotExist. The caller
// owns the returned key and must Close it.
func Load(ctx context.Context, opts Options) (*Key, error) {
	opts.defaults()
	file, err := readKeyFile(opts.Path)
	if err != nil {
		return nil, err
	}
	return loadFile(ctx, opts, file)
}

// LoadOrCreate returns the device key at opts.Path, loaded into the TPM at
// opts.Device:
//   - a missing file is created (when opts.Generate) and written with mode
//     0600, crash-safe;
//   - a file this TPM cannot load because the TPM was cleared or replaced is
//     renamed to "<path>.tpm-cleared-<UTC time>" when opts.Generate; a new
//     key is made only when opts.RegenerateOnClear too, and the device then
//     needs to be accepted again on the server. Without opts.Generate the
//     file is left alone. Otherwise the error wraps ErrCleared;
//   - a file that is not a TSS2 key (a file-backend key) is left alone and
//     reported.
//
// It retries busy TPMs until ctx is done. RSA key creation can take many
// seconds on real TPMs. The caller owns the returned key and must Close it.
func LoadOrCreate(ctx context.Context, opts Options) (*Key, error) {
	opts.defaults()
	typ, err := keyType(opts.Type)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.WithFields(logrus.Fields{fieldKeyPath: opts.Path, fieldDevice: opts.Device})

	file, err := readKeyFile(opts.Path)
	switch {
	case err == nil:
		k, err := loadFile(ctx, opts, file)
		if err == nil && opts.Type != "" && k.typ != typ {
			log.WithField(fieldKeyType, k.typ).Warnf("the existing TPM key is %s, not the configured %s; keeping it (move the key file away to create a new one)", k.typ, typ)
		}
		if !errors.Is(err, ErrCleared) {
			return k, err
		}
		if !opts.Generate {
			// A static or provisioned key, or a read-only caller: the
			// identity is never moved or replaced here.
			log.WithError(err).Error("TPM key cannot be loaded; leaving the key file in place because key generation is off")
			return nil, fmt.Errorf("%w; the key file %s was left in place (key generation is off)", err, opts.Path)
		}
		// Never over an earlier moved-aside key: a board without a real-time
		// clock may reach this twice at the same boot-time second.
		aside, rerr := atomicfile.MoveAside(opts.Path, opts.Path+clearedSuffix+opts.Now().UTC().Format("20060102T150405Z"))
		if rerr != nil {
			return nil, fmt.Errorf("%w; moving %s aside: %w", err, opts.Path, rerr)
		}
		if !opts.RegenerateOnClear {
			log.WithField(fieldMovedTo, aside).WithError(err).Error("TPM key cannot be loaded; moved it aside, not creating a new one because regeneration is off")
			return nil, fmt.Errorf("%w; the key file was moved to %s; enable regeneration on clear or provision a new key", err, aside)
		}
		log.WithField(fieldMovedTo, aside).WithError(err).Error("TPM key cannot be loaded; moved it aside and creating a new key: the device will be pending on the server until its new key is accepted")
	case errors.Is(err, fs.ErrNotExist):
		if !opts.Generate {
			return nil, fmt.Errorf("TPM key %s does not exist and key generation is off; provision the key or enable generation: %w", opts.Path, err)
		}
	default:
		return nil, err
	}
	return generate(ctx, opts, typ, log)
}

func generate(ctx context.Context, opts Options, typ string, log logrus.FieldLogger) (*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create TPM key %s: %w", opts.Path, err)
	}
	d, err := acquire(opts.Device, opts.Transport)
	if err != nil {
		return nil, err
	}
	log.WithField(fieldKeyType, typ).Info("creating TPM key")
	d.mu.Lock()
	file, err := create(ctx, d, typ, opts.ParentPassword)
	d.mu.Unlock()
	if err != nil {
		_ = d.release()
		return nil, fmt.Errorf("TPM %s: %w", opts.Device, err)
	}
	data, err := file.EncodePEM()
	if err == nil {
		err = atomicfile.WriteFile(opts.Path, data, 0o600)
	}
	if err != nil {
		_ = d.release()
		return nil, fmt.Errorf("save TPM key: %w", err)
	}
	k, err := newKey(ctx, d, opts, file)
	if err != nil {
		return nil, err
	}
	log.WithField(fieldKeyType, k.typ).Info("created TPM key")
	return k, nil
}

func readKeyFile(path string) (*tss2.Key, error) {
	if path == "" {
		return nil, errors.New("TPM key path is empty; configure the key file path")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read TPM key: %w", err)
	}
	if !tss2.IsPEM(data) {
		return nil, fmt.Errorf("TPM key %s: no %q PEM block; it is not a TPM key file (a software key belongs to the file backend): %w", path, tss2.BlockType, tss2.ErrFormat)
	}
	file, err := tss2.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("TPM key %s: %w", path, err)
	}
	return file, nil
}

func loadFile(ctx context.Context, opts Options, file *tss2.Key) (*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load TPM key %s: %w", opts.Path, err)
	}
	d, err := acquire(opts.Device, opts.Transport)
	if err != nil {
		return nil, err
	}
	return newKey(ctx, d, opts, file)
}

// newKey loads file on d. It takes over the caller's reference to d and
// releases it on failure.
func newKey(ctx context.Context, d *device, opts Options, file *tss2.Key) (*Key, error) {
	fail := func(err error) (*Key, error) {
		_ = d.release()
		return nil, fmt.Errorf("TPM key %s on %s: %w", opts.Path, d.name, err)
	}
	pub, typ, err := parsePublic(file.Public)
	if err != nil {
		return fail(err)
	}
	k := &Key{dev: d, file: file, pub: pub, typ: typ, ownerAuth: opts.ParentPassword, log: opts.Logger.WithField(fieldKeyPath, opts.Path)}
	d.mu.Lock()
	err = k.loadLocked(ctx)
	d.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	return k, nil
}
