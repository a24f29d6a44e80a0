package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mender-agent/mender-agent/config"
	"github.com/mender-agent/mender-agent/keystore"
)

// bootstrapTimeout bounds the single authentication attempt of bootstrap.
const bootstrapTimeout = 30 * time.Second

func bootstrapCommand() *command {
	var opts bootstrapOptions
	return &command{
		name:    "bootstrap",
		summary: "make sure the device key exists and, with a server configured, authenticate once",
		flags: func(o *options) {
			opts.register(o, "generate a new device key; the replaced key is kept as mender-agent.pem.previous")
		},
		run: func(ctx context.Context, g *globals, _ []string, std stdio) error {
			env, pass, err := opts.prepare(ctx, g, std)
			if err != nil {
				return err
			}
			defer env.close()
			key, err := env.loadKey(ctx, keyRequest{create: true, passphrase: pass})
			if err != nil {
				return err
			}
			defer func() { _ = key.close() }()
			fp, err := keystore.Fingerprint(key.signer.Public())
			if err != nil {
				return err
			}
			fmt.Fprintf(std.out, "device key: %s (%s backend, %s)\n", key.path, key.backend, fp)
			if len(env.cfg.ServerURLs()) == 0 {
				fmt.Fprintln(std.out, "no server configured; not authenticating")
				return nil
			}
			store, err := env.newTrust()
			if err != nil {
				return err
			}
			client, err := env.authenticator(key, store)
			if err != nil {
				return err
			}
			actx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
			defer cancel()
			tok, err := client.Authenticate(actx)
			if err != nil {
				if hint := store.Explain(err, ""); hint != "" {
					return fmt.Errorf("authentication: %w\nhint: %s", err, hint)
				}
				return fmt.Errorf("authentication: %w", err)
			}
			fmt.Fprintf(std.out, "authenticated with %s; token valid until %s\n", tok.ServerURL, tok.Expires.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

// rotateKey generates a new device key, keeping the old one as .previous.
func (e *environment) rotateKey(ctx context.Context, pass []byte) error {
	path, static := e.keyPath()
	if static {
		return fmt.Errorf("--forcebootstrap: the device key %s is static (Security.AuthPrivateKey) and is never replaced", path)
	}
	backend, _, err := backendFor(path, e.cfg.Security.AuthKeyBackend)
	if err != nil {
		return err
	}
	if backend == config.BackendTPM {
		return rotateTPMKey(ctx, e, path)
	}
	k, err := keystore.Rotate(keystore.Options{
		Path:       path,
		Generate:   true,
		Type:       e.cfg.Security.AuthKeyType,
		Passphrase: pass,
		Logger:     e.component("keystore"),
		Now:        time.Now,
	})
	if err != nil {
		return err
	}
	fp, _ := keystore.Fingerprint(k.Public())
	e.component("keystore").WithField("fingerprint", fp).Warn("new device key generated; the server will list this device as pending until the new key is accepted")
	return nil
}
