package main

import (
	"context"
	"crypto"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/authapi"
	"github.com/mender-agent/mender-agent/agent/tokencache"
	"github.com/mender-agent/mender-agent/dbus"
	"github.com/mender-agent/mender-agent/forwarder"
	"github.com/mender-agent/mender-agent/identity"
	"github.com/mender-agent/mender-agent/keystore"
	"github.com/mender-agent/mender-agent/trust"
)

// authTimeout bounds one HTTP exchange with the server.
const authTimeout = 30 * time.Second

func daemonCommand() *command {
	var opts bootstrapOptions
	return &command{
		name:    "daemon",
		summary: "run the agent: keep the device authenticated and serve the token over D-Bus",
		flags: func(o *options) {
			opts.register(o, "generate a new device key before starting (the old key is kept as .previous)")
		},
		run: func(ctx context.Context, g *globals, _ []string, std stdio) error {
			// Catch SIGHUP from the start: its default action would kill
			// a daemon that is still loading its key.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			env, pass, err := opts.prepare(ctx, g, std)
			if err != nil {
				return err
			}
			defer env.close()
			err = runDaemon(ctx, hup, g, env, pass)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				// SIGTERM or SIGINT: a clean stop.
				return nil
			}
			return err
		},
	}
}

func readPassphrase(arg string, std stdio) ([]byte, error) {
	if arg == "" {
		return nil, nil
	}
	return keystore.ReadPassphrase(arg, std.in)
}

// newTrust builds the TLS trust store from the configuration.
func (e *environment) newTrust() (*trust.Store, error) {
	c := e.cfg
	tc := trust.Config{
		ServerCertificate: c.ServerCertificate,
		SkipVerify:        c.SkipVerify,
		ClientCertificate: c.HTTPSClient.Certificate,
		ClientKey:         c.HTTPSClient.Key,
		CertExpiryWarning: c.ClientCertExpiryWarning(),
		BuildTime:         builtAt(),
		Now:               time.Now,
		Logger:            e.component("trust"),
	}
	if c.HTTPSClient.Key != "" {
		// The store calls this from handshakes; bind the TPM settings now
		// so a reload of the configuration cannot race with it.
		sec := c.Security
		tc.LoadClientKey = func(path string) (crypto.Signer, error) { return e.clientKeys.load(e, sec, path) }
	}
	return trust.New(tc)
}

// authenticator builds the server client for the current configuration.
func (e *environment) authenticator(key *deviceKey, store *trust.Store) (*authapi.Client, error) {
	c := e.cfg
	idOpts := identity.Options{
		Script:  identity.DefaultScript(),
		Timeout: c.IdentityTimeout(),
		Logger:  e.component("identity"),
	}
	return authapi.New(authapi.Config{
		Servers:     c.ServerURLs(),
		TenantToken: c.TenantToken.Reveal(),
		Tier:        c.DeviceTier,
		Signer:      key.signer,
		Identity: func(ctx context.Context) (string, error) {
			d, err := identity.Collect(ctx, idOpts)
			if err != nil {
				return "", err
			}
			return d.JSON(), nil
		},
		HTTPClient: store.HTTPClient(authTimeout),
		UserAgent:  userAgent(),
		BuildTime:  builtAt(),
		Logger:     e.component("authapi"),
		Now:        time.Now,
	})
}

// binding ties a cached token to the server, tenant and key it was issued
// for.
func (e *environment) binding(key *deviceKey) (tokencache.Binding, error) {
	fp, err := keystore.Fingerprint(key.signer.Public())
	if err != nil {
		return tokencache.Binding{}, err
	}
	return tokencache.NewBinding(e.cfg.ServerURLs(), e.cfg.TenantToken.Reveal(), fp), nil
}

// swappableAuth lets SIGHUP replace the server client without touching the
// agent, which keeps its token. It also adds the trust store's actionable
// hint to TLS failures, so the agent's log line says what to fix.
type swappableAuth struct {
	cur atomic.Pointer[authState]
}

// authState is one configuration's server client and trust store; it is
// replaced whole.
type authState struct {
	client  *authapi.Client
	store   *trust.Store
	servers []string
}

func (s *swappableAuth) set(c *authapi.Client, store *trust.Store, servers []string) {
	s.cur.Store(&authState{client: c, store: store, servers: servers})
}

func (s *swappableAuth) Authenticate(ctx context.Context) (agent.Token, error) {
	st := s.cur.Load()
	for _, srv := range st.servers {
		st.store.WarnIfInsecure(srv)
	}
	tok, err := st.client.Authenticate(ctx)
	if err != nil {
		if hint := st.store.Explain(err, ""); hint != "" {
			return tok, &hintError{err: err, hint: hint}
		}
	}
	return tok, err
}

// hintError carries an operator hint with an error; errors.Is and As see
// through it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + "; hint: " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// daemonMemoryLimit is the Go runtime's soft memory limit for the daemon
// when GOMEMLIMIT is not set: the live heap is about 1 MiB, and without a
// limit the heap grows to the collector's 4 MiB minimum goal. At 8 MiB and
// below the collector runs often enough under bursts of D-Bus calls to
// show in their latency (dist/mender-authd.service sets the same value).
const daemonMemoryLimit = 9 << 20

func runDaemon(ctx context.Context, hup <-chan os.Signal, g *globals, env *environment, pass []byte) error {
	log := env.component("daemon")
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
	if len(env.cfg.ServerURLs()) == 0 {
		return errors.New("no server configured: set ServerURL (or Servers) in " + func() string { p, _ := g.mainConfig(); return p }())
	}
	if !env.cfg.DBus.Enabled {
		// Consumers get the token only over D-Bus, and the unit
		// (Type=dbus) waits for the bus name: running without it would
		// serve nobody and be restarted forever.
		return errors.New("configuration DBus.Enabled is false, but D-Bus is how mender-agent hands the token to consumers; remove the setting")
	}
	key, err := env.loadKey(ctx, keyRequest{create: true, passphrase: pass})
	if err != nil {
		return err
	}
	defer func() { _ = key.close() }()
	fp, _ := keystore.Fingerprint(key.signer.Public())
	log.WithFields(logrus.Fields{"backend": key.backend, fieldPath: key.path, "fingerprint": fp}).Info("device key loaded")

	store, err := env.newTrust()
	if err != nil {
		return err
	}
	client, err := env.authenticator(key, store)
	if err != nil {
		return err
	}
	auth := &swappableAuth{}
	auth.set(client, store, env.cfg.ServerURLs())
	transport := &swappableTransport{}
	transport.set(store.Transport())

	acfg := env.cfg.Agent
	var cache agent.TokenStore
	if acfg.TokenCache {
		b, err := env.binding(key)
		if err != nil {
			return err
		}
		c, err := tokencache.New(tokencache.Options{
			Path:    filepath.Join(env.dataDir, tokencache.FileName),
			Binding: b,
			Logger:  env.component("tokencache"),
		})
		if err != nil {
			return err
		}
		cache = c
	}
	ag, err := agent.New(agent.Config{
		Authenticator:       auth,
		Cache:               cache,
		Logger:              env.component("agent"),
		BuildTime:           builtAt(),
		RenewAtFraction:     acfg.RenewAtFraction,
		RenewJitterFraction: acfg.RenewJitterFraction,
		RenewMargin:         env.cfg.RenewMargin(),
		BackoffMin:          env.cfg.BackoffMin(),
		BackoffMax:          env.cfg.BackoffMax(),
		// Each server may take up to authTimeout; the attempt must outlast
		// trying all of them.
		AttemptTimeout: time.Duration(len(env.cfg.ServerURLs()))*authTimeout + 10*time.Second,
	})
	if err != nil {
		return err
	}
	tasks := []task{ag.Run}

	localURL := func(t agent.Token) string { return t.ServerURL }
	if acfg.ForwarderEnabled {
		fw, err := forwarder.New(forwarder.Config{
			Transport:   transport,
			IdleTimeout: env.cfg.ForwarderIdleTimeout(),
			// A consumer's 401 with the current token means the server
			// no longer accepts it: re-authenticate now.
			Unauthorized: func(bearer string) {
				if cur := ag.Current(); !cur.IsZero() && bearer == cur.JWT() {
					ag.ReportUnauthorized()
				}
			},
			Logger: env.component("forwarder"),
		})
		if err != nil {
			return err
		}
		// Bind now so the URL handed to consumers is known and a busy
		// address fails the start rather than the first consumer.
		if err := fw.Listen(); err != nil {
			return err
		}
		localURL = fw.LocalURL
		tasks = append(tasks, fw.Run)
	}
	srv, err := dbus.New(dbus.Config{
		Service:  ag,
		LocalURL: localURL,
		Logger:   env.component("dbus"),
	})
	if err != nil {
		return err
	}
	tasks = append(tasks, srv.Serve)
	tasks = append(tasks, func(ctx context.Context) error {
		return reloadOnHUP(ctx, hup, g, env, key, reloadTargets{store: store, auth: auth, transport: transport, agent: ag})
	})
	log.WithField("version", version).Info("mender-agent started")
	err = runTasks(ctx, tasks...)
	if errors.Is(err, context.Canceled) {
		log.Info("mender-agent stopped")
	}
	return err
}
