package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Timeouts of the transports a Store builds.
const (
	dialTimeout      = 30 * time.Second
	handshakeTimeout = 30 * time.Second
	idleConnTimeout  = 90 * time.Second
	// maxIdleConns is how many idle keep-alive connections a transport
	// keeps, all of them for one server if need be: a transport talks to
	// one Mender server, and the forwarder's consumers (update, connect,
	// inventory) send requests at the same time. With net/http's default
	// of 2 per host, every request beyond the second concurrent one would
	// close its connection afterwards and the next would pay a new TCP
	// and TLS handshake.
	maxIdleConns = 16
)

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Transport returns a new HTTP transport for the Mender server: proxies from
// the environment (CONNECT tunnels for https, Basic credentials from the
// proxy URL, NO_PROXY honoured), the store's current TLS trust for every
// new connection, and bounded dial and handshake times. HTTP/1.1 only.
//
// HTTPS connections are made by the transport's DialTLSContext, which dials
// with the transport's DialContext (replace it before first use to route
// connections differently); TLSClientConfig is not used for them. The caller
// owns the transport and should call CloseIdleConnections when done.
func (s *Store) Transport() *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 s.plainHTTPProxy,
		DialContext:           d.DialContext,
		TLSClientConfig:       s.TLSConfig(),
		TLSHandshakeTimeout:   handshakeTimeout,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConns,
		IdleConnTimeout:       idleConnTimeout,
		ExpectContinueTimeout: time.Second,
	}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, _, err := s.dialTLS(ctx, t.DialContext, network, addr)
		if err != nil {
			return nil, err // not a typed nil *tls.Conn
		}
		return conn, nil
	}
	return t
}

// HTTPClient returns a client using a new Transport with the overall
// request timeout (0 means none; the forwarder streams large downloads).
func (s *Store) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: s.Transport(), Timeout: timeout}
}

// plainHTTPProxy is the transport's proxy selector for http:// requests;
// https:// requests are tunnelled by dialTLS itself.
func (s *Store) plainHTTPProxy(r *http.Request) (*url.URL, error) {
	if r.URL.Scheme != "http" {
		return nil, nil
	}
	return s.proxy(r.URL)
}

// HandshakeError is a TLS handshake that failed on a connection made by a
// Store's Transport. It records whether the server asked for a client
// certificate and which one was sent, and unwraps to the crypto/tls or
// crypto/x509 error.
type HandshakeError struct {
	// Addr is the server's host:port.
	Addr string
	// ClientCertificateRequested reports whether the server asked for a
	// client certificate before the handshake failed.
	ClientCertificateRequested bool
	// ClientCertificate is the certificate sent, nil when none was.
	ClientCertificate *x509.Certificate
	Err               error
}

// Error names the server address and the underlying error.
func (e *HandshakeError) Error() string {
	return fmt.Sprintf("tls handshake with %s: %v", e.Addr, e.Err)
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *HandshakeError) Unwrap() error { return e.Err }

// dialInfo tells Check what happened during a TLS dial.
type dialInfo struct {
	certAsked bool
	certSent  *tls.Certificate
}

// dialTLS connects to addr directly or through the configured proxy and
// performs a verified TLS handshake for addr's host.
func (s *Store) dialTLS(ctx context.Context, dial dialFunc, network, addr string) (*tls.Conn, *dialInfo, error) {
	info := &dialInfo{}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, info, fmt.Errorf("dial %s: %w", addr, err)
	}
	// The trust files are re-read (when changed) by the handshake's own
	// verification and client-certificate callbacks.
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+handshakeTimeout)
	defer cancel()

	proxyURL, err := s.proxy(&url.URL{Scheme: "https", Host: addr})
	if err != nil {
		return nil, info, fmt.Errorf("proxy for %s: %w", addr, err)
	}
	var conn net.Conn
	if proxyURL != nil {
		conn, err = s.dialProxy(ctx, dial, proxyURL, addr)
	} else {
		conn, err = dial(ctx, network, addr)
	}
	if err != nil {
		return nil, info, err
	}
	cfg := s.ClientConfig(host)
	get := cfg.GetClientCertificate
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := get(cri)
		info.certAsked, info.certSent = true, c
		return c, err
	}
	tc := tls.Client(conn, cfg)
	hctx, hcancel := context.WithTimeout(ctx, handshakeTimeout)
	defer hcancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		he := &HandshakeError{Addr: addr, ClientCertificateRequested: info.certAsked, Err: err}
		if info.certSent != nil {
			he.ClientCertificate = info.certSent.Leaf
		}
		return nil, info, he
	}
	return tc, info, nil
}
