package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/config"
	"github.com/mender-agent/mender-agent/trust"
)

// swappableTransport lets SIGHUP give the forwarder a transport built from
// new trust settings; requests already in flight finish on the old one.
type swappableTransport struct {
	cur atomic.Pointer[http.Transport]
}

func (t *swappableTransport) set(tr *http.Transport) {
	if old := t.cur.Swap(tr); old != nil {
		old.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper.
func (t *swappableTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.cur.Load().RoundTrip(r)
}

// reloadTargets are the running components a reload updates.
type reloadTargets struct {
	store     *trust.Store
	auth      *swappableAuth
	transport *swappableTransport
	agent     *agent.Agent
}

// trustSettings are the configuration fields the trust store is built
// from; a change in any of them needs a new store.
func trustSettings(c *config.Config) string {
	return fmt.Sprintf("%q %t %q %q %d", c.ServerCertificate, c.SkipVerify,
		c.HTTPSClient.Certificate, c.HTTPSClient.Key, c.Agent.ClientCertExpiryWarningDays)
}

// restartSettings are settings a running daemon cannot change; a reload
// that changes them says they wait for a restart.
func restartSettings(c *config.Config) string {
	return fmt.Sprintf("%+v %+v %+v", c.Security, c.Agent, c.DBus)
}

// reloadOnHUP re-reads the configuration and the trust files on SIGHUP.
// The agent keeps its token throughout. New trust settings get a new trust
// store for both the server client and the forwarder; if the servers or
// the tenant changed, the agent re-authenticates at once. A configuration
// that does not load, or trust settings that do not work, are refused
// whole and the running configuration stays.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, g *globals, env *environment, key *deviceKey, rt reloadTargets) error {
	log := env.component("daemon")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hup:
		}
		log.Info("SIGHUP: reloading configuration and trust files")
		next, err := g.load(env.log.Out)
		if err != nil {
			log.WithError(err).Error("configuration reload refused; keeping the running configuration")
			continue
		}
		next.close()
		old := env.cfg
		store := rt.store
		env.cfg = next.cfg
		if trustSettings(old) != trustSettings(next.cfg) {
			s, err := env.newTrust()
			if err != nil {
				env.cfg = old
				log.WithError(err).Error("configuration reload refused: the new trust settings do not work; keeping the running configuration")
				continue
			}
			store = s
		} else if err := store.Reload(); err != nil {
			log.WithError(err).Error("trust files reload refused; keeping the last good certificates")
		}
		client, err := env.authenticator(key, store)
		if err != nil {
			env.cfg = old
			log.WithError(err).Error("configuration reload refused; keeping the running configuration")
			continue
		}
		if store != rt.store {
			rt.store = store
			rt.transport.set(store.Transport())
			log.Info("trust settings changed; new connections use them")
		}
		rt.auth.set(client, store, env.cfg.ServerURLs())
		env.log.SetLevel(next.log.GetLevel())
		if restartSettings(old) != restartSettings(env.cfg) {
			log.Warn("changes to Security, Agent or DBus settings take effect at the next restart")
		}
		if fmt.Sprint(old.ServerURLs()) != fmt.Sprint(env.cfg.ServerURLs()) || old.TenantToken.Reveal() != env.cfg.TenantToken.Reveal() {
			log.Info("servers or tenant changed; re-authenticating (the token cache keeps its old binding until the next restart)")
			rt.agent.RequestRefresh()
		}
	}
}
