package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mender-agent/mender-agent/identity"
	"github.com/mender-agent/mender-agent/internal/atomicfile"
	"github.com/mender-agent/mender-agent/keystore"
	"github.com/mender-agent/mender-agent/tpm"
)

// rotateTPMKey replaces the TPM device key: the new key is created first
// (beside the old one), then the old key file is kept as .previous the way
// the file keystore keeps it, and the new one takes its place, so a failure
// at any step leaves a usable key at the path.
func rotateTPMKey(ctx context.Context, e *environment, path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		// Nothing to replace: create the first key.
		k, err := e.loadKey(ctx, keyRequest{create: true})
		if err != nil {
			return err
		}
		return k.close()
	}
	sec := e.cfg.Security
	parentPW, err := tpmParentPassword(sec)
	if err != nil {
		return err
	}
	staged := path + ".new"
	// A staged key left by an interrupted rotation never served as the
	// device's identity; start over.
	if err := os.Remove(staged); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--forcebootstrap: %w", err)
	}
	k, err := tpm.LoadOrCreate(ctx, tpm.Options{
		Device:         sec.TPMDevice,
		Path:           staged,
		Type:           sec.AuthKeyType,
		Generate:       true,
		ParentPassword: parentPW,
		Logger:         e.component("tpm"),
	})
	if err != nil {
		return fmt.Errorf("--forcebootstrap: create the new TPM key: %w", err)
	}
	_ = k.Close()
	prev, err := keystore.KeepPrevious(path, time.Now())
	if err != nil {
		return fmt.Errorf("--forcebootstrap: %w", err)
	}
	if err := os.Rename(staged, path); err != nil {
		return fmt.Errorf("--forcebootstrap: install the new key (the old one is kept at %s): %w", prev, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("--forcebootstrap: %w", err)
	}
	e.component("tpm").WithField(fieldPath, prev).Warn("new TPM device key generated; the old key file was kept; the server will list this device as pending until the new key is accepted")
	return nil
}

// keyInfo describes a loaded key for show-key and provision.
func keyInfo(k *deviceKey) (keystore.Info, error) {
	return keystore.NewInfo(k.backend, k.path, k.signer.Public())
}

func showKeyCommand() *command {
	var asJSON bool
	var passFile string
	return &command{
		name:    "show-key",
		summary: "print the device key's backend, type, SHA-256 fingerprint and public key",
		flags: func(o *options) {
			o.Bool(&asJSON, "", "json", "print JSON for scripts")
			passphraseOption(o, &passFile)
		},
		run: func(ctx context.Context, g *globals, _ []string, std stdio) error {
			env, pass, err := g.loadWithPassphrase(passFile, std)
			if err != nil {
				return err
			}
			defer env.close()
			k, err := env.loadKey(ctx, keyRequest{create: false, passphrase: pass})
			if errors.Is(err, keystore.ErrKeyNotFound) {
				return fmt.Errorf("%w; 'mender-agent bootstrap' (or the daemon) creates it", err)
			}
			if err != nil {
				return err
			}
			defer func() { _ = k.close() }()
			info, err := keyInfo(k)
			if err != nil {
				return err
			}
			if asJSON {
				return info.WriteJSON(std.out)
			}
			return info.WriteText(std.out)
		},
	}
}

func provisionCommand() *command {
	var keyType, export string
	return &command{
		name:    "provision",
		summary: "create the device key without contacting a server and print data for preauthorization",
		flags: func(o *options) {
			o.String(&keyType, "", "key-type", "TYPE", "", "key type for a new key: ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 (default Security.AuthKeyType)")
			o.String(&export, "", "export", "FORMAT", keystore.ProvisionJSON, "output format: json or csv")
		},
		run: func(ctx context.Context, g *globals, _ []string, std stdio) error {
			if export != keystore.ProvisionJSON && export != keystore.ProvisionCSV {
				return usagef("--export %q: want json or csv", export)
			}
			env, err := g.load(std.err)
			if err != nil {
				return err
			}
			defer env.close()
			id, err := identity.Collect(ctx, identity.Options{
				Script:  identity.DefaultScript(),
				Timeout: env.cfg.IdentityTimeout(),
				Logger:  env.component("identity"),
			})
			if err != nil {
				return err
			}
			k, err := env.loadKey(ctx, keyRequest{create: true, keyType: keyType})
			if err != nil {
				return err
			}
			defer func() { _ = k.close() }()
			info, err := keyInfo(k)
			if err != nil {
				return err
			}
			return keystore.WriteProvision(std.out, export, id.JSON(), info)
		},
	}
}
