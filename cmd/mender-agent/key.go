package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mender-agent/mender-agent/config"
	"github.com/mender-agent/mender-agent/keystore"
	"github.com/mender-agent/mender-agent/tpm"
)

// deviceKey is the loaded device key with what the commands report about
// it.
type deviceKey struct {
	signer  crypto.Signer
	backend string
	path    string
	close   func() error
}

// keyRequest says how to get the device key.
type keyRequest struct {
	// create allows generating a key when none exists.
	create bool
	// keyType overrides Security.AuthKeyType (provision --key-type).
	keyType string
	// passphrase decrypts a protected file key.
	passphrase []byte
}

// backendFor decides which backend owns the key at path: an existing file
// is read by the backend its PEM block type names, so software and TPM keys
// coexist and switching needs no migration; a missing file is created by
// the configured backend. exists reports whether the file is there.
func backendFor(path, configured string) (backend string, exists bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if tpm.IsTSS2PEM(data) {
			return config.BackendTPM, true, nil
		}
		return config.BackendFile, true, nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, fs.ErrPermission):
		return "", false, fmt.Errorf("device key %s: %w", path, err)
	}
	switch strings.ToLower(configured) {
	case "", config.BackendFile:
		return config.BackendFile, false, nil
	case config.BackendTPM:
		return config.BackendTPM, false, nil
	}
	return "", false, fmt.Errorf("configuration Security.AuthKeyBackend %q: want \"file\" or \"tpm\"", configured)
}

// loadKey loads (and, when allowed, creates) the device key.
func (e *environment) loadKey(ctx context.Context, req keyRequest) (*deviceKey, error) {
	path, static := e.keyPath()
	sec := e.cfg.Security
	backend, exists, err := backendFor(path, sec.AuthKeyBackend)
	if err != nil {
		return nil, err
	}
	keyType := req.keyType
	if keyType == "" {
		keyType = sec.AuthKeyType
	}
	if req.create && !static {
		// The data directory holds the key and the token cache; like the
		// Mender clients, create it private.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	switch backend {
	case config.BackendTPM:
		parentPW, err := tpmParentPassword(sec)
		if err != nil {
			return nil, err
		}
		k, err := tpm.LoadOrCreate(ctx, tpm.Options{
			Device:            sec.TPMDevice,
			Path:              path,
			Type:              keyType,
			Generate:          req.create && !static,
			RegenerateOnClear: sec.TPMRegenerateOnClear,
			ParentPassword:    parentPW,
			Logger:            e.component("tpm"),
			Now:               time.Now,
		})
		if err != nil {
			if errors.Is(err, tpm.ErrNoDevice) && sec.TPMFallbackToFile && !exists {
				e.component("key").WithError(err).Warn("no TPM found; Security.TPMFallbackToFile is set, so the device key is kept in a file instead")
				return e.loadFileKey(req, path, static, keyType)
			}
			return nil, err
		}
		if req.create || static {
			if err := e.privateKeyFile(path); err != nil {
				_ = k.Close()
				return nil, err
			}
		}
		return &deviceKey{signer: k, backend: tpm.Backend, path: path, close: k.Close}, nil
	default:
		return e.loadFileKey(req, path, static, keyType)
	}
}

// privateKeyFile makes sure a TPM key file is readable by its owner only:
// with the key's empty authorization, anyone who can read the file and
// open the TPM could sign as the device. Tools such as openssl genpkey
// write 0644 under the usual umask.
func (e *environment) privateKeyFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("device key %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("device key %s is readable by other users (mode %04o) and cannot be fixed: %w", path, perm, err)
		}
		e.component("key").WithField(fieldPath, path).Warnf("device key file was readable by other users (mode %04o); changed it to 0600", perm)
	}
	return nil
}

// tpmParentPassword reads Security.TPMParentPasswordFile, if set: the
// owner hierarchy's authorization, needed for every TPM key operation.
func tpmParentPassword(sec config.Security) ([]byte, error) {
	f := sec.TPMParentPasswordFile
	if f == "" {
		return nil, nil
	}
	pw, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("configuration Security.TPMParentPasswordFile: %w", err)
	}
	return []byte(strings.TrimRight(string(pw), "\r\n")), nil
}

func (e *environment) loadFileKey(req keyRequest, path string, static bool, keyType string) (*deviceKey, error) {
	opts := keystore.Options{
		Path:       path,
		Generate:   req.create && !static,
		Type:       keyType,
		Passphrase: req.passphrase,
		Logger:     e.component("keystore"),
		Now:        time.Now,
	}
	var (
		k   *keystore.Key
		err error
	)
	switch {
	case req.create || static:
		// LoadOrCreate also enforces the key file's mode and the data
		// directory's permissions; Generate is false for a static key,
		// which is never generated, moved or overwritten.
		k, err = keystore.LoadOrCreate(opts)
	default:
		// Read-only callers (show-key, check) never change the disk.
		k, err = keystore.Load(path, req.passphrase)
	}
	if err != nil {
		if static {
			return nil, fmt.Errorf("static device key (Security.AuthPrivateKey) %s: %w", path, err)
		}
		return nil, err
	}
	return &deviceKey{signer: k, backend: keystore.BackendFile, path: path, close: func() error { return nil }}, nil
}

// clientKeyCache hands the trust store the mTLS key, loading it again only
// when the key file itself changed: the store asks whenever the certificate
// or the key file changes and on every reload, and each TPM load takes TPM
// object memory. TPM keys stay open until Close: the store may keep
// signing with an earlier key when a new certificate and key pair turns
// out to be unusable. It is safe for concurrent use.
type clientKeyCache struct {
	mu      sync.Mutex
	path    string
	stamp   string
	signer  crypto.Signer
	closers []io.Closer
}

// Close releases every TPM key the cache loaded.
func (c *clientKeyCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cl := range c.closers {
		errs = append(errs, cl.Close())
	}
	c.closers, c.signer = nil, nil
	return errors.Join(errs...)
}

func fileStamp(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	stamp := fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		stamp += fmt.Sprintf(" %d %d", st.Dev, st.Ino)
	}
	return stamp, nil
}

func (c *clientKeyCache) load(e *environment, sec config.Security, path string) (crypto.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := fileStamp(path)
	if err != nil {
		return nil, fmt.Errorf("configuration HttpsClient.Key: %w", err)
	}
	if c.signer != nil && c.path == path && c.stamp == stamp {
		return c.signer, nil
	}
	signer, closer, err := e.loadClientKey(sec, path)
	if err != nil {
		return nil, err
	}
	if closer != nil {
		c.closers = append(c.closers, closer)
	}
	c.path, c.stamp, c.signer = path, stamp, signer
	return signer, nil
}

// loadClientKey loads the mTLS key at path for the trust store: a TSS2 key
// file is used through the TPM, anything else is read as a PEM file key.
// closer is non-nil for keys that hold TPM resources.
func (e *environment) loadClientKey(sec config.Security, path string) (signer crypto.Signer, closer io.Closer, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration HttpsClient.Key: %w", err)
	}
	if tpm.IsTSS2PEM(data) {
		parentPW, err := tpmParentPassword(sec)
		if err != nil {
			return nil, nil, err
		}
		k, err := tpm.Load(context.Background(), tpm.Options{
			Device:         sec.TPMDevice,
			Path:           path,
			ParentPassword: parentPW,
			Logger:         e.component("tpm"),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("configuration HttpsClient.Key %s: %w", path, err)
		}
		// TLSSigner also allows the RSA-PSS signatures TLS 1.3 requires.
		return k.TLSSigner(), k, nil
	}
	k, err := keystore.Load(path, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration HttpsClient.Key %s: %w", path, err)
	}
	return k, nil, nil
}
