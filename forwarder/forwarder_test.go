package forwarder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/test/authserver"
)

const testTimeout = 60 * time.Second

// client talks to the forwarder like a local consumer: plain HTTP to
// loopback.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 200, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

func decodeSeen(t testing.TB, resp *http.Response) seen {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var s seen
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestNewChecksConfig(t *testing.T) {
	tr := &http.Transport{}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "no transport", cfg: Config{}, wantErr: "Transport is nil"},
		{name: "not loopback", cfg: Config{Transport: tr, Listen: "0.0.0.0:0"}, wantErr: "not a loopback IP address"},
		{name: "host name", cfg: Config{Transport: tr, Listen: "localhost:0"}, wantErr: "not a loopback IP address"},
		{name: "no port", cfg: Config{Transport: tr, Listen: "127.0.0.1"}, wantErr: "missing port"},
		{name: "bad port", cfg: Config{Transport: tr, Listen: "127.0.0.1:http-nope"}, wantErr: "port"},
		{name: "negative idle", cfg: Config{Transport: tr, IdleTimeout: -time.Second}, wantErr: "negative"},
		{name: "defaults", cfg: Config{Transport: tr}},
		{name: "ipv6 loopback", cfg: Config{Transport: tr, Listen: "[::1]:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, f)
				return
			}
			require.NoError(t, err)
			assert.Empty(t, f.URL(), "New does not listen")
		})
	}
}

func TestSetUpstreamChecksURL(t *testing.T) {
	f, err := New(Config{Transport: &http.Transport{}})
	require.NoError(t, err)
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "https", url: "https://hosted.mender.io"},
		{name: "http with path", url: "http://10.0.0.1:8080/prefix/"},
		{name: "no scheme", url: "hosted.mender.io", wantErr: `scheme ""`},
		{name: "ftp", url: "ftp://hosted.mender.io", wantErr: `scheme "ftp"`},
		{name: "no host", url: "https:///x", wantErr: "no host"},
		{name: "user info", url: "https://u:p@hosted.mender.io", wantErr: "user information"},
		{name: "unparsable", url: "https://[::1", wantErr: "missing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.SetUpstream(tt.url)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Contains(t, err.Error(), tt.url)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.url, f.upstream.Load().raw)
		})
	}
}

func TestForwardsMethodsPathsHeadersAndBodies(t *testing.T) {
	p := newPKI(t)
	up := p.upstream(t, echoHandler("a"))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL))
	c := newClient(t)
	upHost := strings.TrimPrefix(up.URL, "https://")

	tests := []struct {
		name   string
		method string
		target string
		body   []byte
	}{
		{name: "GET with query", method: http.MethodGet, target: "/api/devices/v1/deployments/device/deployments/next?artifact_name=a%20b&device_type=qemux86-64"},
		{name: "PUT inventory", method: http.MethodPut, target: "/api/devices/v1/inventory/device/attributes", body: []byte(`[{"name":"hostname","value":"dev1"}]`)},
		{name: "PATCH inventory", method: http.MethodPatch, target: "/api/devices/v1/inventory/device/attributes", body: bytes.Repeat([]byte("x"), 100_000)},
		{name: "POST with escaped path", method: http.MethodPost, target: "/api/devices/v1/deployments/device/deployments/a%2Fb/log", body: []byte("log")},
		{name: "DELETE", method: http.MethodDelete, target: "/api/devices/v1/something"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.URL()+tt.target, bytes.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer device-jwt")
			req.Header.Set("X-Men-Custom", "kept")
			req.Header.Add("X-Men-Multi", "1")
			req.Header.Add("X-Men-Multi", "2")
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "dropped")
			req.Header.Set("Keep-Alive", "timeout=5")
			req.Header.Set("X-Forwarded-For", "10.1.1.1")
			resp, err := c.Do(req)
			require.NoError(t, err)
			assert.Equal(t, "a", resp.Header.Get("X-Upstream"))
			s := decodeSeen(t, resp)

			want, err := url.Parse(tt.target)
			require.NoError(t, err)
			assert.Equal(t, tt.method, s.Method)
			assert.Equal(t, want.Path, s.Path)
			assert.Equal(t, want.RawPath, s.RawPath, "escaping is preserved")
			assert.Equal(t, want.RawQuery, s.RawQuery)
			assert.Equal(t, upHost, s.Host, "Host is rewritten to the server's")
			assert.Equal(t, []string{"Bearer device-jwt"}, s.Header["Authorization"])
			assert.Equal(t, []string{"kept"}, s.Header["X-Men-Custom"])
			assert.Equal(t, []string{"1", "2"}, s.Header["X-Men-Multi"])
			assert.NotContains(t, s.Header, "X-Hop", "headers named in Connection are hop-by-hop")
			assert.NotContains(t, s.Header, "Keep-Alive")
			assert.NotContains(t, s.Header, "X-Forwarded-For", "the forwarder adds no forwarding headers and drops the client's")
			assert.Equal(t, int64(len(tt.body)), s.BodyLen)
			assert.Equal(t, sha(tt.body), s.BodySHA)
		})
	}
}

func TestRefusesAuthenticationAPI(t *testing.T) {
	p := newPKI(t)
	var reached atomic.Int64
	up := p.upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL))

	tests := []struct {
		name   string
		target string
		want   int
	}{
		{name: "auth_requests", target: "/api/devices/v1/authentication/auth_requests", want: http.StatusForbidden},
		{name: "no trailing slash", target: "/api/devices/v1/authentication", want: http.StatusForbidden},
		{name: "double slash", target: "//api/devices/v1//authentication/auth_requests", want: http.StatusForbidden},
		{name: "dot segments", target: "/api/devices/v1/inventory/../authentication/auth_requests", want: http.StatusForbidden},
		{name: "encoded slash", target: "/api/devices/v1%2Fauthentication/auth_requests", want: http.StatusForbidden},
		{name: "encoded letters", target: "/api/devices/v1/%61uthentication/auth_requests", want: http.StatusForbidden},
		{name: "upper case", target: "/API/Devices/V1/Authentication/auth_requests", want: http.StatusForbidden},
		{name: "encoded dot segment", target: "/api/devices/v1/x/%2e%2e/authentication/auth_requests", want: http.StatusForbidden},
		{name: "backslash", target: `/api/devices/v1\authentication/auth_requests`, want: http.StatusForbidden},
		{name: "other API passes", target: "/api/devices/v1/inventory/device/attributes", want: http.StatusOK},
		{name: "similar name passes", target: "/api/devices/v1/deployments/authentication-logs", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			status, body := rawRequest(t, f, "POST "+tt.target+" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
			assert.Equal(t, tt.want, status, body)
			if tt.want == http.StatusForbidden {
				assert.Contains(t, body, "authentication API is not reachable")
				assert.Equal(t, before, reached.Load(), "a refused request never reaches the server")
			} else {
				assert.Equal(t, before+1, reached.Load())
			}
		})
	}
}

// rawRequest sends a request exactly as written (no client-side path
// cleaning) and returns the status and body.
func rawRequest(t testing.TB, f *Forwarder, raw string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL(), "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, raw)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestRejectsOddRequestTargets(t *testing.T) {
	p := newPKI(t)
	up := p.upstream(t, echoHandler("a"))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL))
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{name: "CONNECT", raw: "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", want: http.StatusMethodNotAllowed},
		{name: "absolute form without path", raw: "GET http://evil.example HTTP/1.1\r\nHost: evil.example\r\n\r\n", want: http.StatusBadRequest},
		{name: "opaque", raw: "GET http:api/devices/v1/authentication/auth_requests HTTP/1.1\r\nHost: x\r\n\r\n", want: http.StatusBadRequest},
		{name: "absolute form is forwarded by path", raw: "GET http://evil.example/api/devices/v1/inventory HTTP/1.1\r\nHost: evil.example\r\n\r\n", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawRequest(t, f, tt.raw)
			assert.Equal(t, tt.want, status, body)
		})
	}
}

func TestBadGatewayWithoutUpstream(t *testing.T) {
	p := newPKI(t)
	f := startForwarder(t, p, Config{})
	resp, err := newClient(t).Get(f.URL() + "/api/devices/v1/inventory/device/attributes")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, string(body), "has not authenticated yet")
}

func TestBadGatewayWhenServerUnreachable(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	logs := &bytes.Buffer{}
	logger := logrus.New()
	logger.SetOutput(&lockedBuffer{b: logs})
	f := startForwarder(t, p, Config{Logger: logger})
	require.NoError(t, f.SetUpstream(dead))
	resp, err := newClient(t).Get(f.URL() + "/api/devices/v1/inventory")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, string(body), "cannot reach the server")
	assert.Contains(t, string(body), "connection refused")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// generator yields n pseudo-random bytes without holding them.
type generator struct {
	n, off int64
	h      interface{ Write([]byte) (int, error) }
}

func (g *generator) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n-g.off {
		p = p[:g.n-g.off]
	}
	for i := range p {
		x := uint64(g.off+int64(i)) * 0x9E3779B97F4A7C15
		p[i] = byte(x >> 56)
	}
	g.off += int64(len(p))
	_, _ = g.h.Write(p)
	return len(p), nil
}

func TestStreamsLargeUploadWithoutBuffering(t *testing.T) {
	p := newPKI(t)
	up := p.upstream(t, echoHandler("a"))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL))

	sent := sha256.New()
	gen := &generator{n: uploadSize, h: sent}
	req, err := http.NewRequest(http.MethodPut, f.URL()+"/api/devices/v1/deployments/device/deployments/1/log", io.NopCloser(gen))
	require.NoError(t, err)
	req.ContentLength = -1 // chunked: the forwarder cannot know the size in advance

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := newClient(t).Do(req)
	require.NoError(t, err)
	s := decodeSeen(t, resp)
	runtime.ReadMemStats(&after)

	assert.Equal(t, int64(uploadSize), s.BodyLen)
	assert.Equal(t, hex.EncodeToString(sent.Sum(nil)), s.BodySHA)
	// Everything in this process (client, forwarder and server) allocated
	// far less than the body: nothing held it whole.
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("uploaded %d MiB; %d MiB allocated in total", uploadSize>>20, allocated>>20)
	if checkAllocs {
		assert.Less(t, allocated, uint64(uploadSize/4), "allocations must stay bounded while streaming")
	}
}

func TestWebSocketEchoThroughForwarder(t *testing.T) {
	p := newPKI(t)
	headers := make(chan http.Header, 1)
	up := p.upstream(t, wsEchoHandler(headers))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL))

	conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL(), "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(testTimeout)))
	var keyBytes [16]byte
	_, _ = rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	_, err = fmt.Fprintf(conn, "GET /api/devices/v1/deviceconnect/connect HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer device-jwt\r\n\r\n",
		strings.TrimPrefix(f.URL(), "http://"), key)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Equal(t, authserver.WebSocketAccept(key), resp.Header.Get("Sec-WebSocket-Accept"))
	assert.True(t, strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"))

	h := <-headers
	assert.Equal(t, "Bearer device-jwt", h.Get("Authorization"))

	clientMask := []byte{0x12, 0x34, 0x56, 0x78} // clients must mask (RFC 6455 §5.3)
	big := make([]byte, 70_000)
	_, _ = rand.Read(big)
	for _, msg := range [][]byte{[]byte("hello"), bytes.Repeat([]byte("m"), 300), big} {
		require.NoError(t, authserver.WriteFrame(conn, authserver.Frame{Fin: true, Opcode: 0x2, Payload: msg}, clientMask))
		fr, err := authserver.ReadFrame(br, false)
		require.NoError(t, err)
		assert.Equal(t, byte(0x2), fr.Opcode)
		assert.Equal(t, sha(msg), sha(fr.Payload), "echoed %d bytes", len(msg))
	}
	require.NoError(t, authserver.WriteFrame(conn, authserver.Frame{Fin: true, Opcode: 0x8, Payload: []byte{0x03, 0xe8}}, clientMask))
	fr, err := authserver.ReadFrame(br, false)
	require.NoError(t, err)
	assert.Equal(t, byte(0x8), fr.Opcode)
	assert.Equal(t, []byte{0x03, 0xe8}, fr.Payload)
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the forwarder closes the client side when the server closes")
}

func TestPortStableAcrossRenewalAndServerChange(t *testing.T) {
	p := newPKI(t)
	upA := p.upstream(t, echoHandler("a"))
	upB := p.upstream(t, echoHandler("b"))
	f := startForwarder(t, p, Config{})
	c := newClient(t)

	first := f.LocalURL(testToken(t, upA.URL, 1))
	require.Equal(t, f.URL(), first)
	renewed := f.LocalURL(testToken(t, upA.URL, 2))
	assert.Equal(t, first, renewed, "a renewed token keeps the forwarder's URL")
	resp, err := c.Get(renewed + "/x")
	require.NoError(t, err)
	assert.Equal(t, "a", decodeSeen(t, resp).Server)

	moved := f.LocalURL(testToken(t, upB.URL, 3))
	assert.Equal(t, first, moved, "the listener lives as long as the forwarder")
	resp, err = c.Get(moved + "/x")
	require.NoError(t, err)
	assert.Equal(t, "b", decodeSeen(t, resp).Server, "requests follow the new server, even on a kept-alive connection")
}

func TestLocalURLFallsBackWhenNotListening(t *testing.T) {
	f, err := New(Config{Transport: &http.Transport{}})
	require.NoError(t, err)
	assert.Equal(t, "https://server.example", f.LocalURL(testToken(t, "https://server.example", 1)))
	assert.Equal(t, "ftp://server.example", f.LocalURL(testToken(t, "ftp://server.example", 1)), "an unusable URL is handed out as is")
}

func TestManyConcurrentConsumers(t *testing.T) {
	const consumers = 100
	p := newPKI(t)
	var arrived atomic.Int64
	all := make(chan struct{})
	up := p.upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold every request until all consumers are in flight at once.
		if arrived.Add(1) == consumers {
			close(all)
		}
		select {
		case <-all:
		case <-time.After(testTimeout):
			http.Error(w, "not all consumers arrived", http.StatusGatewayTimeout)
			return
		}
		echoHandler("a").ServeHTTP(w, r)
	}))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL))
	c := newClient(t)

	var wg sync.WaitGroup
	for i := range consumers {
		wg.Go(func() {
			body := []byte(fmt.Sprintf("consumer %d", i))
			resp, err := c.Post(f.URL()+fmt.Sprintf("/api/devices/v1/c/%d", i), "text/plain", bytes.NewReader(body))
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			if !assert.Equal(t, http.StatusOK, resp.StatusCode) {
				return
			}
			var s seen
			if assert.NoError(t, json.NewDecoder(resp.Body).Decode(&s)) {
				assert.Equal(t, fmt.Sprintf("/api/devices/v1/c/%d", i), s.Path)
				assert.Equal(t, sha(body), s.BodySHA)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(consumers), arrived.Load())
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	p := newPKI(t)
	up := p.upstream(t, echoHandler("a"))
	f := startForwarder(t, p, Config{IdleTimeout: 50 * time.Millisecond})
	require.NoError(t, f.SetUpstream(up.URL))
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL(), "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(testTimeout)))
	_, err = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	// The connection stays open for keep-alive until the idle timeout; the
	// read deadline is only a safety net far beyond it.
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "an idle connection is closed by the forwarder")
}

func TestRunStopsAndClearsURL(t *testing.T) {
	p := newPKI(t)
	f, err := New(Config{Transport: p.transport})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	require.Eventually(t, func() bool { return f.URL() != "" }, testTimeout, time.Millisecond)
	addr := strings.TrimPrefix(f.URL(), "http://")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Empty(t, f.URL())
	_, err = net.Dial("tcp", addr)
	assert.Error(t, err, "the listener is closed")
	assert.ErrorContains(t, f.Run(context.Background()), "twice")
}

// testToken makes a token issued by serverURL; n makes it unique.
func testToken(t testing.TB, serverURL string, n int) agent.Token {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	jwt := enc([]byte(`{"alg":"RS256"}`)) + "." + enc(fmt.Appendf(nil, `{"exp":%d,"sub":"d%d"}`, time.Now().Add(time.Hour).Unix(), n)) + ".sig"
	tok, err := agent.ParseToken(jwt, serverURL, time.Now())
	require.NoError(t, err)
	return tok
}
