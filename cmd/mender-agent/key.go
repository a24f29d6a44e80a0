package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mender-agent/mender-agent/keystore"
	"github.com/mender-agent/mender-agent/tpm"
)

// Key backends.
const (
	backendFile = "file"
	backendTPM  = "tpm"
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
// the configured backend.
func backendFor(path, configured string) (string, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if tpm.IsTSS2PEM(data) {
			return backendTPM, nil
		}
		return backendFile, nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("device key %s: %w", path, err)
	}
	switch strings.ToLower(configured) {
	case "", backendFile:
		return backendFile, nil
	case backendTPM:
		return backendTPM, nil
	}
	return "", fmt.Errorf("configuration Security.AuthKeyBackend %q: want \"file\" or \"tpm\"", configured)
}

// loadKey loads (and, when allowed, creates) the device key.
func (e *environment) loadKey(ctx context.Context, req keyRequest) (*deviceKey, error) {
	path, static := e.keyPath()
	sec := e.cfg.Security
	backend, err := backendFor(path, sec.AuthKeyBackend)
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
	case backendTPM:
		if strings.EqualFold(keyType, "ed25519") {
			return nil, fmt.Errorf("configuration Security.AuthKeyType \"ed25519\" cannot be used with the TPM backend: TPM 2.0 chips do not implement Ed25519; use ecdsa-p256 (the default) or rsa-2048")
		}
		var parentPW []byte
		if f := sec.TPMParentPasswordFile; f != "" {
			pw, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("configuration Security.TPMParentPasswordFile: %w", err)
			}
			parentPW = []byte(strings.TrimRight(string(pw), "\r\n"))
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
			if errors.Is(err, tpm.ErrNoDevice) && sec.TPMFallbackToFile && !tpmKeyExists(path) {
				e.component("key").WithError(err).Warn("no TPM found; Security.TPMFallbackToFile is set, so the device key is kept in a file instead")
				return e.loadFileKey(req, path, static, keyType)
			}
			return nil, err
		}
		return &deviceKey{signer: k, backend: backendTPM, path: path, close: k.Close}, nil
	default:
		return e.loadFileKey(req, path, static, keyType)
	}
}

func tpmKeyExists(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && tpm.IsTSS2PEM(data)
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
	if req.create && !static {
		k, err = keystore.LoadOrCreate(opts)
	} else {
		k, err = keystore.Load(path, req.passphrase)
	}
	if err != nil {
		if static {
			return nil, fmt.Errorf("static device key (Security.AuthPrivateKey) %s: %w", path, err)
		}
		return nil, err
	}
	return &deviceKey{signer: k, backend: backendFile, path: path, close: func() error { return nil }}, nil
}

// loadClientKey loads the mTLS key at path for the trust store: a TSS2 key
// file is used through the TPM, anything else is read as a PEM file key.
func (e *environment) loadClientKey(tpmDevice, path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration HttpsClient.Key: %w", err)
	}
	if tpm.IsTSS2PEM(data) {
		k, err := tpm.Load(context.Background(), tpm.Options{
			Device: tpmDevice,
			Path:   path,
			Logger: e.component("tpm"),
		})
		if err != nil {
			return nil, fmt.Errorf("configuration HttpsClient.Key %s: %w", path, err)
		}
		// The TPM key stays open for the life of the process: the trust
		// store signs every handshake with it. TLSSigner also allows the
		// RSA-PSS signatures TLS 1.3 requires.
		return k.TLSSigner(), nil
	}
	k, err := keystore.Load(path, nil)
	if err != nil {
		return nil, fmt.Errorf("configuration HttpsClient.Key %s: %w", path, err)
	}
	return k, nil
}
