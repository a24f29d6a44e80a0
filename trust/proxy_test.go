package trust_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testpki"
	"github.com/mender-agent/mender-agent/trust"
)

// connectProxy is a minimal forward proxy on 127.0.0.1: CONNECT tunnels to
// routed addresses, and plain requests answered with "ok".
type connectProxy struct {
	ln       net.Listener
	wantAuth string            // expected Proxy-Authorization, "" for none
	routes   map[string]string // CONNECT target -> real address

	connects atomic.Int32
	plain    atomic.Int32
	mu       sync.Mutex
	auths    []string
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, wantAuth string, routes map[string]string, cert *testpki.Cert) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert.TLSCertificate()}, Time: fixedNow})
	}
	p := &connectProxy{ln: ln, wantAuth: wantAuth, routes: routes}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) Addr() string { return p.ln.Addr().String() }

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	auth := req.Header.Get("Proxy-Authorization")
	p.mu.Lock()
	p.auths = append(p.auths, auth)
	p.mu.Unlock()
	if p.wantAuth != "" && auth != p.wantAuth {
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if req.Method != http.MethodConnect {
		p.plain.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		return
	}
	p.connects.Add(1)
	target, ok := p.routes[req.Host]
	if !ok {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	_ = up.SetDeadline(time.Now().Add(20 * time.Second))
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, br)
		_ = up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	<-done
}

func (p *connectProxy) Auths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auths...)
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// namedServer starts a server whose certificate is for mender.test and
// returns it with its URL under that name.
func namedServer(t *testing.T, ca *testpki.CA) (*testServer, string) {
	t.Helper()
	srv := startServer(t, ca.Issue(testpki.Options{DNSNames: []string{"mender.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 1, 0)}), serverOptions{})
	_, port, err := net.SplitHostPort(srv.Host())
	require.NoError(t, err)
	return srv, "https://mender.test:" + port
}

func TestProxyConnect(t *testing.T) {
	ca := newCA("CA")
	srv, u := namedServer(t, ca)
	target := strings.TrimPrefix(u, "https://")

	tests := []struct {
		name     string
		env      func(proxy string) map[string]string
		tlsProxy bool
	}{
		{name: "HTTPS_PROXY", env: func(p string) map[string]string { return map[string]string{"HTTPS_PROXY": "http://device:s3cret@" + p} }},
		{name: "https_proxy", env: func(p string) map[string]string { return map[string]string{"https_proxy": "http://device:s3cret@" + p} }},
		{name: "no scheme means http", env: func(p string) map[string]string { return map[string]string{"HTTPS_PROXY": "device:s3cret@" + p} }},
		{name: "NO_PROXY for another domain", env: func(p string) map[string]string {
			return map[string]string{"HTTPS_PROXY": "http://device:s3cret@" + p, "NO_PROXY": "example.com,.internal"}
		}},
		{name: "proxy over TLS", tlsProxy: true, env: func(p string) map[string]string {
			return map[string]string{"HTTPS_PROXY": "https://device:s3cret@" + p}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var proxyCert *testpki.Cert
			if tt.tlsProxy {
				proxyCert = serverCert(ca)
			}
			proxy := startProxy(t, basic("device", "s3cret"), map[string]string{target: srv.Host()}, proxyCert)
			log, _ := newLogger()
			cfg := baseConfig(bundleFile(t, ca), log)
			cfg.Env = envMap(tt.env(proxy.Addr()))
			s, err := trust.New(cfg)
			require.NoError(t, err)
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()

			require.NoError(t, get(t, client, u+"/"))
			client.CloseIdleConnections()
			require.NoError(t, get(t, client, u+"/again"))
			assert.Equal(t, int32(2), proxy.connects.Load(), "one CONNECT per new connection")
			assert.Equal(t, []string{basic("device", "s3cret"), basic("device", "s3cret")}, proxy.Auths())
		})
	}
}

func TestProxyWrongCredentials(t *testing.T) {
	ca := newCA("CA")
	srv, u := namedServer(t, ca)
	proxy := startProxy(t, basic("device", "right"), map[string]string{strings.TrimPrefix(u, "https://"): srv.Host()}, nil)
	log, _ := newLogger()
	cfg := baseConfig(bundleFile(t, ca), log)
	cfg.Env = envMap(map[string]string{"HTTPS_PROXY": "http://device:wrong@" + proxy.Addr()})
	s, err := trust.New(cfg)
	require.NoError(t, err)
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()

	err = get(t, client, u)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "proxy http://device:xxxxx@"+proxy.Addr()+": CONNECT "+strings.TrimPrefix(u, "https://")+
		": 407 Proxy Authentication Required; check the user and password in the proxy variable")
	assert.NotContains(t, err.Error(), "wrong", "the proxy password never appears in errors")
}

func TestNoProxy(t *testing.T) {
	ca := newCA("CA")
	srv, u := namedServer(t, ca)
	target := strings.TrimPrefix(u, "https://")
	for _, noProxy := range []string{"mender.test", ".test", "*", "other.example, mender.test"} {
		t.Run(noProxy, func(t *testing.T) {
			proxy := startProxy(t, "", map[string]string{target: srv.Host()}, nil)
			log, _ := newLogger()
			cfg := baseConfig(bundleFile(t, ca), log)
			cfg.Env = envMap(map[string]string{"HTTPS_PROXY": "http://" + proxy.Addr(), "no_proxy": noProxy})
			s, err := trust.New(cfg)
			require.NoError(t, err)
			tr := s.Transport()
			defer tr.CloseIdleConnections()
			var direct atomic.Int32
			d := &net.Dialer{Timeout: 10 * time.Second}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == target { // stands in for DNS
					direct.Add(1)
					addr = srv.Host()
				}
				return d.DialContext(ctx, network, addr)
			}
			require.NoError(t, get(t, &http.Client{Transport: tr}, u))
			assert.Equal(t, int32(1), direct.Load(), "dialled directly")
			assert.Zero(t, proxy.connects.Load(), "the proxy is not used")
		})
	}
}

func TestHTTPProxyForPlainHTTP(t *testing.T) {
	proxy := startProxy(t, basic("u", "p"), nil, nil)
	log, _ := newLogger()
	cfg := baseConfig(bundleFile(t, newCA("CA")), log)
	cfg.Env = envMap(map[string]string{"HTTP_PROXY": "http://u:p@" + proxy.Addr()})
	s, err := trust.New(cfg)
	require.NoError(t, err)
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()
	require.NoError(t, get(t, client, "http://plain.test/"))
	assert.Equal(t, int32(1), proxy.plain.Load())
	assert.Zero(t, proxy.connects.Load())
}

func TestBadProxySettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "socks", env: map[string]string{"HTTPS_PROXY": "socks5://127.0.0.1:1080"},
			want: `proxy variable HTTPS_PROXY=socks5://127.0.0.1:1080: unsupported proxy scheme "socks5"; use http://[user:password@]host:port`},
		{name: "path", env: map[string]string{"http_proxy": "http://proxy.example.com:3128/some/path"},
			want: "proxy variable http_proxy=http://proxy.example.com:3128/some/path: a proxy URL has no path or query; use http://[user:password@]host:port"},
		{name: "bad port keeps the password secret", env: map[string]string{"HTTPS_PROXY": "http://dev:hunter2@proxy.example.com:port"},
			want: `proxy variable HTTPS_PROXY=xxxxx@proxy.example.com:port: not a valid URL (check its percent-encoding and port); use http://[user:password@]host:port`},
		{name: "bad escape keeps the password secret", env: map[string]string{"HTTPS_PROXY": "http://dev:pa%zzword@proxy.example.com:3128"},
			want: `proxy variable HTTPS_PROXY=xxxxx@proxy.example.com:3128: not a valid URL (check its percent-encoding and port); use http://[user:password@]host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := newLogger()
			cfg := baseConfig(bundleFile(t, newCA("CA")), log)
			cfg.Env = envMap(tt.env)
			s, err := trust.New(cfg)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Equal(t, tt.want, err.Error())
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}
