package authserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Device API paths served by the Server.
const (
	PathAuth             = "/api/devices/v1/authentication/auth_requests"
	PathInventory        = "/api/devices/v1/inventory/device/attributes"
	PathDeploymentsNext  = "/api/devices/v1/deployments/device/deployments/next"
	PathDeviceConnect    = "/api/devices/v1/deviceconnect/connect"
	PathUpload           = "/api/devices/v1/test/upload"
	PathEcho             = "/api/devices/v1/test/echo"
	PathManagementDevice = "/api/management/v2/devauth/devices"
)

// RequestIDHeader carries the id of every request in every answer.
const RequestIDHeader = "X-MEN-RequestID"

// DefaultTokenLifetime is the real server's default jwt_exp_timeout.
const DefaultTokenLifetime = 604800 * time.Second

// Log field names used by this package.
const (
	FieldDeviceID  = "device_id"
	FieldIdentity  = "identity"
	FieldStatus    = "status"
	FieldPath      = "path"
	FieldRequestID = "request_id"
	FieldExpires   = "expires"
)

// Options configure a Server. The zero value serves plain HTTP, keeps new
// devices pending and issues tokens valid for a week.
type Options struct {
	// TLS serves HTTPS with this configuration (it must hold a
	// certificate); nil serves plain HTTP.
	TLS *tls.Config
	// AutoAccept accepts every new device at its first request.
	AutoAccept bool
	// TokenLifetime is the exp-iat of issued tokens; zero means
	// DefaultTokenLifetime.
	TokenLifetime time.Duration
	// Logger receives device events at info and each request at debug;
	// nil discards them.
	Logger logrus.FieldLogger
	// Now is the clock for token times and Retry-After dates; nil means
	// time.Now.
	Now func() time.Time
	// SigningKey signs issued tokens; nil generates one.
	SigningKey ed25519.PrivateKey
	// TenantToken, when set, is the only tenant token the server accepts:
	// a request with another one (or none) gets 401, as a hosted server
	// answers for an unknown tenant.
	TenantToken string
	// MaxLog bounds the request log (the oldest entries are dropped);
	// zero means 10000.
	MaxLog int
}

// Server is the test server. Its methods are safe for concurrent use.
// Start runs the listener goroutines and Close stops them; the device
// admin, fault and log methods work with or without Start (for example
// when Handler is mounted on an httptest.Server).
type Server struct {
	log      logrus.FieldLogger
	now      func() time.Time
	key      ed25519.PrivateKey
	tls      *tls.Config
	tenant   string
	maxLog   int
	handler  http.Handler
	serveWG  sync.WaitGroup
	handleWG sync.WaitGroup

	mu       sync.Mutex
	st       state
	srv      *http.Server
	addr     string
	ln       net.Listener
	conns    map[net.Conn]struct{}
	hijacked map[net.Conn]struct{}
	down     bool
	closed   bool
}

// state is everything the handlers read and write, guarded by Server.mu.
type state struct {
	autoAccept bool
	lifetime   time.Duration
	authSets   []*authSet
	setIndex   map[string]*authSet // identity NUL pubkey -> auth set
	setByID    map[string]*authSet
	deviceIDs  map[string]string // canonical identity -> device id
	attrs      map[string][]Attribute
	fault      *Fault
	reqLog     []Request
}

// New returns a Server that is not listening yet. It does no I/O.
func New(opts Options) *Server {
	s := &Server{
		log:      opts.Logger,
		now:      opts.Now,
		key:      opts.SigningKey,
		tls:      opts.TLS,
		tenant:   opts.TenantToken,
		maxLog:   opts.MaxLog,
		conns:    map[net.Conn]struct{}{},
		hijacked: map[net.Conn]struct{}{},
	}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.key == nil {
		_, s.key, _ = ed25519.GenerateKey(rand.Reader)
	}
	if s.maxLog <= 0 {
		s.maxLog = 10000
	}
	s.st = state{
		autoAccept: opts.AutoAccept,
		lifetime:   opts.TokenLifetime,
		deviceIDs:  map[string]string{},
		setIndex:   map[string]*authSet{},
		setByID:    map[string]*authSet{},
		attrs:      map[string][]Attribute{},
	}
	if s.st.lifetime <= 0 {
		s.st.lifetime = DefaultTokenLifetime
	}
	s.handler = s.routes()
	return s
}

// Handler returns the server's HTTP handler, for mounting on another
// server.
func (s *Server) Handler() http.Handler { return s.handler }

// SigningPublicKey returns the key that verifies issued tokens.
func (s *Server) SigningPublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Start listens on addr ("" means 127.0.0.1:0) and serves in background
// goroutines until Close.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.closed {
		return errors.New("authserver: Start called twice or after Close")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("authserver: listen on %s: %w", addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         s.trackConn,
		ErrorLog:          log.New(debugWriter{s.log}, "", 0),
	}
	if s.tls != nil {
		s.srv.TLSConfig = s.tls.Clone()
	}
	s.serveLocked(ln)
	return nil
}

func (s *Server) serveLocked(ln net.Listener) {
	s.ln = ln
	srv := s.srv
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		if srv.TLSConfig != nil {
			_ = srv.ServeTLS(ln, "", "")
		} else {
			_ = srv.Serve(ln)
		}
	}()
}

// URL returns the base URL ("https://127.0.0.1:port"), or "" before
// Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == "" {
		return ""
	}
	if s.tls != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// SetOutage simulates the server being unreachable (on) and coming back
// (off). While down, every request on every path is answered by cutting
// the connection without a response, as a crashed backend behind a load
// balancer does; the request is still logged, with Status 0. Turning the
// outage on also cuts the connections that are open, WebSockets included.
func (s *Server) SetOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = on
	if on {
		s.closeConnsLocked()
	}
}

func (s *Server) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

func (s *Server) closeConnsLocked() {
	for c := range s.conns {
		_ = c.Close()
	}
	for c := range s.hijacked {
		_ = c.Close()
	}
}

// Close stops listening, cuts every connection (WebSocket ones included)
// and waits for the server's goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.srv
	s.closeConnsLocked()
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Close()
	}
	s.serveWG.Wait()
	s.handleWG.Wait()
	return err
}

func (s *Server) trackConn(c net.Conn, cs http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cs {
	case http.StateNew:
		if s.closed {
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(s.conns, c)
	}
}

// trackHijacked registers a hijacked connection so Outage and Close can cut
// it; the returned func forgets it.
func (s *Server) trackHijacked(c net.Conn) (func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down || s.closed {
		return nil, false
	}
	s.hijacked[c] = struct{}{}
	return func() {
		s.mu.Lock()
		delete(s.hijacked, c)
		s.mu.Unlock()
	}, true
}

// SetAutoAccept turns automatic acceptance of new devices on or off.
// Devices already pending stay pending.
func (s *Server) SetAutoAccept(on bool) {
	s.mu.Lock()
	s.st.autoAccept = on
	s.mu.Unlock()
}

// SetTokenLifetime changes the lifetime of tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	if d <= 0 {
		d = DefaultTokenLifetime
	}
	s.mu.Lock()
	s.st.lifetime = d
	s.mu.Unlock()
}

// Fault makes the auth endpoint misbehave. Faults apply only to
// PathAuth; the device APIs keep working.
type Fault struct {
	// Status answers with this status instead of processing the request;
	// zero processes the request normally (after Delay).
	Status int
	// RetryAfter is sent as the Retry-After header when not empty.
	RetryAfter string
	// Body replaces the JSON error body (or, with Status 200, the token),
	// for garbage and oversized answers.
	Body []byte
	// ContentType goes with Body; empty means application/json, or
	// application/jwt for Status 200.
	ContentType string
	// Delay holds the answer back this long (cut short when the client
	// goes away).
	Delay time.Duration
	// Drop closes the connection without answering.
	Drop bool
	// Count is how many auth requests the fault affects; zero means until
	// ClearFault.
	Count int
}

// SetFault installs f, replacing any previous fault.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.st.fault = &f // a private copy: takeFault counts it down
	s.mu.Unlock()
}

// ClearFault removes the current fault.
func (s *Server) ClearFault() {
	s.mu.Lock()
	s.st.fault = nil
	s.mu.Unlock()
}

// takeFault returns the fault that applies to the next auth request, if
// any, counting it down.
func (s *Server) takeFault() *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.st.fault
	if f == nil {
		return nil
	}
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			s.st.fault = nil
		}
	}
	c := *f // handlers read it while later requests count down
	return &c
}

// debugWriter sends net/http's own error lines (TLS handshake failures) to
// the logger at debug level.
type debugWriter struct{ log logrus.FieldLogger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
