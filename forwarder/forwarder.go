package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/agent"
)

// Log field names used by this package.
const (
	fieldListen   = "listen"
	fieldUpstream = "upstream"
	fieldMethod   = "method"
	fieldPath     = "path"
)

// Defaults for Config fields left zero.
const (
	// DefaultListen binds a random free port on the IPv4 loopback address.
	DefaultListen = "127.0.0.1:0"
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 90 * time.Second
	// readHeaderTimeout bounds how long a client may take to send request
	// headers, so idle half-open connections cannot pile up.
	readHeaderTimeout = 30 * time.Second
	// shutdownGrace is how long Run lets requests in flight finish after
	// its context is done; WebSocket sessions are closed after it.
	shutdownGrace = 500 * time.Millisecond
)

// AuthPathPrefix is the device authentication API, which the forwarder
// refuses (403) in any spelling.
const AuthPathPrefix = "/api/devices/v1/authentication"

// ErrNoUpstream is the reason for 502 answers before the device has
// authenticated: there is no server to forward to yet.
var ErrNoUpstream = errors.New("no server to forward to: the device has not authenticated yet")

// Config configures a Forwarder.
type Config struct {
	// Transport carries requests to the server: TLS with the device's trust
	// configuration, proxies and client certificate. Required.
	Transport http.RoundTripper
	// Listen is the loopback host:port to listen on; empty means
	// DefaultListen. Only loopback addresses are accepted: anything else
	// would let the network act as the device.
	Listen string
	// IdleTimeout closes client keep-alive connections after this long
	// without a request; zero means DefaultIdleTimeout. Upgraded (WebSocket)
	// connections are not subject to it.
	IdleTimeout time.Duration
	// Logger receives the forwarder's log lines. Nil discards them.
	Logger logrus.FieldLogger
	// Unauthorized, when set, is called with the bearer token of a request
	// the server answered with 401, so the agent can re-authenticate at
	// once (consumers such as mender-connect never ask it to). It must not
	// block.
	Unauthorized func(bearer string)
}

// upstream is the server the forwarder sends requests to.
type upstream struct {
	raw string
	url *url.URL
}

// Forwarder is a loopback reverse proxy to the server that issued the
// device's token. Create it with New, then call Listen (optional: Run
// listens itself) and Run. All methods are safe for concurrent use.
//
// The listener lives as long as the Forwarder: its URL never changes, not
// across token renewals nor when the server changes. SetUpstream switches
// the server for new requests; requests and WebSocket sessions in flight
// finish with the server they started with.
type Forwarder struct {
	transport    http.RoundTripper
	unauthorized func(string)
	listen       string
	idle         time.Duration
	log          logrus.FieldLogger
	proxy        *httputil.ReverseProxy

	upstream atomic.Pointer[upstream]

	mu      sync.Mutex
	ln      net.Listener
	url     atomic.Pointer[string]
	running bool
}

// New checks cfg and returns a Forwarder. It does no I/O and starts no
// goroutines.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Transport == nil {
		return nil, errors.New("forwarder config: Transport is nil; pass the server transport from the trust store")
	}
	listen := cfg.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("forwarder config: Listen %q: %w; use host:port such as %s", cfg.Listen, err, DefaultListen)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("forwarder config: Listen %q: host %q is not a loopback IP address; the forwarder acts as the device and must only be reachable locally", cfg.Listen, host)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return nil, fmt.Errorf("forwarder config: Listen %q: port %q: %w", cfg.Listen, port, err)
	}
	if cfg.IdleTimeout < 0 {
		return nil, fmt.Errorf("forwarder config: IdleTimeout %s is negative", cfg.IdleTimeout)
	}
	f := &Forwarder{
		transport:    cfg.Transport,
		unauthorized: cfg.Unauthorized,
		listen:       listen,
		idle:         cfg.IdleTimeout,
		log:          cfg.Logger,
	}
	if f.idle == 0 {
		f.idle = DefaultIdleTimeout
	}
	if f.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		f.log = l
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// ServeHTTP has seen an upstream, and SetUpstream never
			// clears it: the request starts with the current server.
			// SetURL also clears Out.Host, so the Host header becomes the
			// server's. Rewrite (unlike Director) drops the client's
			// X-Forwarded-* headers and adds none.
			pr.SetURL(f.upstream.Load().url)
		},
		Transport:      f.transport,
		ModifyResponse: f.modifyResponse,
		// Zero: a response of known length goes out in as few writes as
		// the copy buffer allows, with one flush at the end. Responses
		// that must stream are still flushed after every write, because
		// httputil.ReverseProxy flushes at once whatever this says when
		// the length is unknown (chunked downloads, long polls) or the
		// body is text/event-stream.
		FlushInterval: 0,
		ErrorHandler:  f.proxyError,
		BufferPool:    &bufferPool{},
		ErrorLog:      newStdLogger(f.log),
	}
	return f, nil
}

// SetUpstream makes serverURL (an http or https base URL, as in the
// configuration's ServerURL) the server new requests are forwarded to.
func (f *Forwarder) SetUpstream(serverURL string) error {
	if cur := f.upstream.Load(); cur != nil && cur.raw == serverURL {
		return nil
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("forwarder upstream %q: %w", serverURL, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("forwarder upstream %q: scheme %q: want https or http", serverURL, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("forwarder upstream %q: no host", serverURL)
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("forwarder upstream %q: user information and fragments are not allowed in a server URL", serverURL)
	}
	if old := f.upstream.Swap(&upstream{raw: serverURL, url: u}); old == nil || old.raw != serverURL {
		f.log.WithField(fieldUpstream, serverURL).Info("forwarding local requests to the server")
	}
	return nil
}

// URL returns the forwarder's base URL, "http://127.0.0.1:<port>", or ""
// when it is not listening.
func (f *Forwarder) URL() string {
	if p := f.url.Load(); p != nil {
		return *p
	}
	return ""
}

// LocalURL makes tok's server the upstream and returns the URL consumers
// should use with tok: the forwarder's URL. It fits dbus.Config.LocalURL
// and never blocks. When the forwarder is not listening, or tok's server
// URL is unusable, it falls back to the server URL itself, as the Mender
// client does when its forwarder cannot start.
func (f *Forwarder) LocalURL(tok agent.Token) string {
	if err := f.SetUpstream(tok.ServerURL); err != nil {
		f.log.WithError(err).Warn("cannot forward to the token's server; handing out its URL directly")
		return tok.ServerURL
	}
	u := f.URL()
	if u == "" {
		f.log.WithField(fieldUpstream, tok.ServerURL).Warn("forwarder not listening; handing out the server URL directly")
		return tok.ServerURL
	}
	return u
}

// Listen binds the listening socket now, so the URL is known (and a bad or
// busy address reported) before Run starts. Calling it again does nothing.
func (f *Forwarder) Listen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listenLocked()
}

func (f *Forwarder) listenLocked() error {
	if f.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("forwarder: listen on %s: %w", f.listen, err)
	}
	f.ln = ln
	u := "http://" + ln.Addr().String()
	f.url.Store(&u)
	f.log.WithField(fieldListen, ln.Addr().String()).Info("local forwarder listening")
	return nil
}

// Run serves until ctx is done, listening first unless Listen was called.
// On return the listener is closed (URL returns ""), requests in flight
// have had a grace period to finish and upgraded connections are closed.
// It returns ctx.Err() after ctx is done, or the error that stopped
// serving. Run may be called once.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("forwarder: Run called twice")
	}
	f.running = true
	if err := f.listenLocked(); err != nil {
		f.mu.Unlock()
		return err
	}
	ln := f.ln
	f.mu.Unlock()
	defer f.url.Store(nil)

	// Requests derive from base, which outlives ctx by the grace period so
	// that Shutdown can let them finish; cancelling it ends WebSocket
	// sessions, which Shutdown does not track.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           f,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       f.idle,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          newStdLogger(f.log),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("forwarder: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(base, shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		f.log.WithError(err).Debug("requests still in flight at shutdown; closing them")
	}
	cancelBase()
	_ = srv.Close()
	<-served
	return ctx.Err()
}

// ServeHTTP forwards r to the current upstream. It refuses the
// authentication API (403), CONNECT (405) and request targets that are not
// absolute paths (400), and answers 502 when there is no upstream yet.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		http.Error(w, "mender-agent forwarder: CONNECT is not supported", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Opaque != "" || !strings.HasPrefix(r.URL.Path, "/") {
		http.Error(w, "mender-agent forwarder: the request target must be an absolute path", http.StatusBadRequest)
		return
	}
	auth, dots := checkPath(r.URL)
	if auth {
		f.log.WithField(fieldMethod, r.Method).WithField(fieldPath, r.URL.Path).Warn("refused a local request to the authentication API")
		http.Error(w, "mender-agent forwarder: the device authentication API is not reachable through the local forwarder", http.StatusForbidden)
		return
	}
	if dots {
		// Legitimate API paths have none, and the server's path prefix is
		// joined in front of the client's path: "/../" could climb out of
		// it past the authentication check above.
		http.Error(w, "mender-agent forwarder: paths with . or .. segments are not forwarded", http.StatusBadRequest)
		return
	}
	if f.upstream.Load() == nil {
		http.Error(w, "mender-agent forwarder: "+ErrNoUpstream.Error()+"; call FetchJwtToken and wait for JwtTokenStateChange", http.StatusBadGateway)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// modifyResponse tells the agent about a 401 for a request that carried a
// bearer token.
func (f *Forwarder) modifyResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusUnauthorized || f.unauthorized == nil || resp.Request == nil {
		return nil
	}
	if bearer, ok := strings.CutPrefix(resp.Request.Header.Get("Authorization"), "Bearer "); ok && bearer != "" {
		f.unauthorized(bearer)
	}
	return nil
}

// maxDecodes bounds the percent-decoding rounds of checkPath.
const maxDecodes = 8

// checkPath looks at u's path however it is spelled (decoded, escaped,
// raw) and however many times a chain of servers might percent-decode it.
// auth reports whether the fully decoded path addresses the authentication
// API, with repeated slashes, dot segments, backslashes and letter case
// normalized the way a server or gateway might; dots reports whether any
// of those forms has a "." or ".." segment.
func checkPath(u *url.URL) (auth, dots bool) {
	paths := [...]string{u.Path, u.EscapedPath(), u.RawPath}
	for i, p := range paths {
		if p == "" || seenBefore(paths[:i], p) {
			continue
		}
		for n := 0; ; n++ {
			dots = dots || dotSegment(p)
			unescaped, err := url.PathUnescape(p)
			if err != nil || unescaped == p || n == maxDecodes {
				break
			}
			p = unescaped
		}
		// A backslash is a separator to some servers.
		p = strings.ReplaceAll(p, `\`, "/")
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if strings.HasPrefix(strings.ToLower(path.Clean(p)), AuthPathPrefix) {
			auth = true
		}
	}
	return auth, dots
}

// dotSegment reports whether p, split at slashes and backslashes, has a
// "." or ".." segment.
func dotSegment(p string) bool {
	for p != "" {
		i := strings.IndexAny(p, `/\`)
		seg := p
		if i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// seenBefore reports whether p is one of earlier, so that the spellings of
// a path that are the same string are checked once.
func seenBefore(earlier []string, p string) bool {
	for _, e := range earlier {
		if e == p {
			return true
		}
	}
	return false
}

// proxyError answers 502 when the server cannot be reached.
func (f *Forwarder) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; there is nobody to answer.
		return
	}
	f.log.WithError(err).WithField(fieldMethod, r.Method).WithField(fieldPath, r.URL.Path).Warn("cannot forward a local request to the server")
	http.Error(w, "mender-agent forwarder: cannot reach the server: "+err.Error(), http.StatusBadGateway)
}

// copyBufferSize is the size of the buffers responses are copied through.
const copyBufferSize = 32 << 10

// bufferPool recycles the reverse proxy's copy buffers, which would
// otherwise be allocated per response.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferSize {
		return
	}
	buf = buf[:copyBufferSize]
	b.p.Put(&buf)
}
