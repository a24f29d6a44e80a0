package forwarder

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testpki"
)

// pki is a test CA and a transport that trusts it, standing in for the
// trust store's transport.
type pki struct {
	ca        *testpki.CA
	transport *http.Transport
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testpki.NewCA("forwarder test CA")
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: testpki.Pool(ca), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		MaxIdleConns:      200,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &pki{ca: ca, transport: tr}
}

// upstream starts a real TLS server on 127.0.0.1 (HTTP/2 enabled, like a
// production gateway) with a certificate from the test CA.
func (p *pki) upstream(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	cert := p.ca.Issue(testpki.Options{CommonName: "127.0.0.1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLSCertificate()}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// seen is what the echo handler reports about a request.
type seen struct {
	Server   string              `json:"server"`
	Proto    string              `json:"proto"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawPath  string              `json:"raw_path"`
	RawQuery string              `json:"raw_query"`
	Host     string              `json:"host"`
	Header   map[string][]string `json:"header"`
	BodyLen  int64               `json:"body_len"`
	BodySHA  string              `json:"body_sha256"`
}

// echoHandler answers every request with what it saw, hashing the body as
// it streams in. name tells servers apart.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		_ = json.NewEncoder(w).Encode(seen{
			Server: name, Proto: r.Proto, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
			RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header, BodyLen: n,
			BodySHA: hex.EncodeToString(h.Sum(nil)),
		})
	})
}

// wsEchoHandler is an RFC 6455 server: it completes the handshake by
// hijacking the connection and echoes every frame until a close frame.
// It records the request headers it saw on seenHeader.
func wsEchoHandler(seenHeader chan<- http.Header) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not a websocket upgrade ("+r.Proto+")", http.StatusBadRequest)
			return
		}
		seenHeader <- r.Header.Clone()
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", authserver.WebSocketAccept(r.Header.Get("Sec-WebSocket-Key")))
		if brw.Flush() != nil {
			return
		}
		for {
			f, err := authserver.ReadFrame(brw.Reader, true)
			if err != nil {
				return
			}
			f.Fin = true
			if authserver.WriteFrame(conn, f, nil) != nil || f.Opcode == 0x8 {
				return
			}
		}
	})
}

// startForwarder runs a Forwarder with p's transport until the test ends.
func startForwarder(t testing.TB, p *pki, cfg Config) *Forwarder {
	t.Helper()
	cfg.Transport = p.transport
	f, err := New(cfg)
	require.NoError(t, err)
	runForwarder(t, f)
	return f
}

// runForwarder listens and runs f until the test ends.
func runForwarder(t testing.TB, f *Forwarder) {
	t.Helper()
	require.NoError(t, f.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}
