package authserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
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

	"github.com/mender-agent/mender-agent/agent/authapi"
	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testpki"
)

var pki = sync.OnceValue(func() *testpki.CA { return testpki.NewCA("authserver test CA") })

var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func edKey() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

func pubPEM(t *testing.T, k crypto.Signer) string {
	p, err := authapi.PublicKeyPEM(k.Public())
	require.NoError(t, err)
	return p
}

// signedRequest builds a correct body and signature for key.
func signedRequest(t *testing.T, key crypto.Signer, idData string) ([]byte, string) {
	t.Helper()
	body, err := authapi.BuildRequestBody(idData, pubPEM(t, key), "", "")
	require.NoError(t, err)
	sig, err := authapi.Sign(key, body)
	require.NoError(t, err)
	return body, sig
}

// testServer is a started TLS server and a client that trusts it.
type testServer struct {
	*authserver.Server
	client *http.Client
}

func start(t *testing.T, opts authserver.Options) testServer {
	t.Helper()
	leaf := pki().Issue(testpki.Options{})
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}
	srv := authserver.New(opts)
	require.NoError(t, srv.Start(""))
	t.Cleanup(func() { _ = srv.Close() })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testpki.Pool(pki()), MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return testServer{Server: srv, client: &http.Client{Transport: tr}}
}

func (s testServer) do(t *testing.T, method, path, bearer string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, body)
	require.NoError(t, err)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, out
}

// auth posts a signed auth request and returns the status and body.
func (s testServer) auth(t *testing.T, key crypto.Signer, idData string) (int, string) {
	t.Helper()
	body, sig := signedRequest(t, key, idData)
	resp, out := s.do(t, http.MethodPost, authserver.PathAuth, "", bytes.NewReader(body), map[string]string{authserver.SignatureHeader: sig, "Content-Type": "application/json"})
	return resp.StatusCode, string(out)
}

// token authenticates an accepted device and returns its JWT.
func (s testServer) token(t *testing.T, key crypto.Signer) string {
	t.Helper()
	status, jwt := s.auth(t, key, `{"mac":"m"}`)
	require.Equal(t, http.StatusOK, status, jwt)
	return jwt
}

func TestVerifyAuthRequest(t *testing.T) {
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ed := edKey()
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)}))
	body := func(idData, pub string) []byte {
		b, _ := json.Marshal(map[string]string{"id_data": idData, "pubkey": pub})
		return b
	}
	edBody, edSig := signedRequest(t, ed, `{"b":"2","a":["x","y"],"n":1.50}`)
	digest := sha256.Sum256(body(`{"a":"1"}`, pubPEM(t, ec256)))
	r, s, _ := ecdsa.Sign(rand.Reader, ec256, digest[:])
	rawECSig := base64.StdEncoding.EncodeToString(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
	rsaBody := body(`{"a":"1"}`, pubPEM(t, rsaKey()))
	rsaDigest := sha256.Sum256(rsaBody)
	pss, _ := rsa.SignPSS(rand.Reader, rsaKey(), crypto.SHA256, rsaDigest[:], nil)
	sign := func(k crypto.Signer, b []byte) string {
		s, err := authapi.Sign(k, b)
		require.NoError(t, err)
		return s
	}

	tests := []struct {
		name         string
		body         []byte
		sig          string
		wantStatus   int
		wantMsg      string
		wantIdentity string
	}{
		{name: "ed25519, identity canonicalized", body: edBody, sig: edSig, wantIdentity: `{"a":["x","y"],"b":"2","n":1.50}`},
		{name: "ecdsa p256", body: body(`{"a":"1"}`, pubPEM(t, ec256)), sig: sign(ec256, body(`{"a":"1"}`, pubPEM(t, ec256))), wantIdentity: `{"a":"1"}`},
		{name: "ecdsa p384", body: body(`{"a":"1"}`, pubPEM(t, ec384)), sig: sign(ec384, body(`{"a":"1"}`, pubPEM(t, ec384))), wantIdentity: `{"a":"1"}`},
		{name: "rsa", body: rsaBody, sig: sign(rsaKey(), rsaBody), wantIdentity: `{"a":"1"}`},
		{name: "bad JSON", body: []byte(`{"id_data":`), sig: "x", wantStatus: 400, wantMsg: "failed to decode auth request"},
		{name: "id_data as an object, not a string", body: []byte(`{"id_data":{"a":"1"},"pubkey":"p"}`), sig: "x", wantStatus: 400, wantMsg: "failed to decode"},
		{name: "id_data missing", body: []byte(`{"pubkey":"p"}`), sig: "x", wantStatus: 400, wantMsg: "id_data: cannot be blank"},
		{name: "pubkey missing", body: []byte(`{"id_data":"{}"}`), sig: "x", wantStatus: 400, wantMsg: "pubkey: cannot be blank"},
		{name: "PKCS#1 RSA public key", body: body(`{"a":"1"}`, pkcs1), sig: "x", wantStatus: 400, wantMsg: "cannot decode public key"},
		{name: "id_data an array", body: body(`["a"]`, pubPEM(t, ed)), sig: "x", wantStatus: 400, wantMsg: "id_data: not a JSON object"},
		{name: "id_data null", body: body(`null`, pubPEM(t, ed)), sig: "x", wantStatus: 400, wantMsg: "not a JSON object"},
		{name: "id_data with trailing data", body: body(`{"a":"1"} {}`, pubPEM(t, ed)), sig: "x", wantStatus: 400, wantMsg: "data after the object"},
		{name: "signature missing", body: edBody, sig: "", wantStatus: 400, wantMsg: "missing request signature header"},
		{name: "signature not base64", body: edBody, sig: "!!", wantStatus: 401, wantMsg: "signature verification failed"},
		{name: "signature over other bytes", body: append(append([]byte(nil), edBody...), ' '), sig: edSig, wantStatus: 401, wantMsg: "signature verification failed"},
		{name: "ecdsa raw r||s", body: body(`{"a":"1"}`, pubPEM(t, ec256)), sig: rawECSig, wantStatus: 401},
		{name: "rsa pss", body: rsaBody, sig: base64.StdEncoding.EncodeToString(pss), wantStatus: 401},
		{name: "signature by another key", body: edBody, sig: sign(edKey(), edBody), wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := authserver.VerifyAuthRequest(tt.body, tt.sig)
			if tt.wantStatus != 0 {
				var re *authserver.RequestError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, tt.wantStatus, re.Status)
				assert.Contains(t, re.Message, tt.wantMsg)
				assert.Nil(t, req)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantIdentity, req.Identity)
		})
	}
}

func FuzzVerifyAuthRequest(f *testing.F) {
	key := edKey()
	pub, _ := authapi.PublicKeyPEM(key.Public())
	body, _ := authapi.BuildRequestBody(`{"mac":"m"}`, pub, "t", "")
	sig, _ := authapi.Sign(key, body)
	f.Add(body, sig)
	f.Add([]byte(`{"id_data":"{}","pubkey":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}`), "AAAA")
	f.Add([]byte(`{"id_data":{"a":1}}`), "")
	f.Add([]byte(`[]`), "x")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		req, err := authserver.VerifyAuthRequest(body, sig)
		if err != nil {
			var re *authserver.RequestError
			require.ErrorAs(t, err, &re)
			assert.Contains(t, []int{400, 401}, re.Status)
			assert.Nil(t, req)
			return
		}
		assert.True(t, strings.HasPrefix(req.Identity, "{"), "an accepted identity is an object")
		assert.NotNil(t, req.PubKey)
	})
}

func TestAuthPendingAcceptReject(t *testing.T) {
	now := time.Now()
	s := start(t, authserver.Options{TokenLifetime: time.Hour, Now: func() time.Time { return now }})
	key := edKey()
	status, body := s.auth(t, key, `{"mac":"m"}`)
	assert.Equal(t, http.StatusUnauthorized, status)
	var e struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	assert.Equal(t, "dev auth: unauthorized", e.Error)
	log := s.RequestLog()
	require.Len(t, log, 1)
	assert.Equal(t, log[0].RequestID, e.RequestID)
	assert.Equal(t, 401, log[0].Status)

	devs := s.Devices()
	require.Len(t, devs, 1)
	require.Error(t, s.Accept("no-such-device"))
	require.NoError(t, s.Accept(pubPEM(t, key)), "a device can be accepted by its public key")

	authBody, sig := signedRequest(t, key, `{"mac":"m"}`)
	resp, jwt := s.do(t, http.MethodPost, authserver.PathAuth, "", bytes.NewReader(authBody), map[string]string{authserver.SignatureHeader: sig})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(jwt))
	assert.Equal(t, "application/jwt", resp.Header.Get("Content-Type"))
	assert.NotEmpty(t, resp.Header.Get(authserver.RequestIDHeader))
	claims, err := authserver.ParseToken(string(jwt), s.SigningPublicKey(), now)
	require.NoError(t, err)
	assert.Equal(t, devs[0].ID, claims.Subject)
	assert.Equal(t, devs[0].AuthSetID, claims.ID)
	assert.Equal(t, "Mender", claims.Issuer)
	assert.Equal(t, now.Unix()+3600, claims.Expires)
	assert.True(t, claims.Device)
	assert.Equal(t, "enterprise", claims.Plan)

	// The token works on the device API until the device is rejected.
	resp, _ = s.do(t, http.MethodGet, authserver.PathDeploymentsNext, string(jwt), nil, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.NoError(t, s.Reject(devs[0].ID))
	resp, _ = s.do(t, http.MethodGet, authserver.PathDeploymentsNext, string(jwt), nil, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	status, _ = s.auth(t, key, `{"mac":"m"}`)
	assert.Equal(t, http.StatusUnauthorized, status, "a rejected device gets no token")

	// A new key for the same identity is a new pending auth set of the
	// same device.
	status, _ = s.auth(t, edKey(), `{"mac":"m"}`)
	assert.Equal(t, http.StatusUnauthorized, status)
	devs = s.Devices()
	require.Len(t, devs, 2)
	assert.Equal(t, devs[0].ID, devs[1].ID)
	assert.NotEqual(t, devs[0].AuthSetID, devs[1].AuthSetID)
	assert.Equal(t, authserver.StatusPending, devs[1].Status)
}

func TestDeviceAPIChecksTheBearerToken(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := start(t, authserver.Options{AutoAccept: true, TokenLifetime: time.Minute, Now: clock})
	jwt := s.token(t, edKey())
	other := start(t, authserver.Options{AutoAccept: true})
	foreign := other.token(t, edKey())

	tests := []struct {
		name   string
		bearer string
		want   int
	}{
		{name: "valid", bearer: jwt, want: http.StatusNoContent},
		{name: "missing", bearer: "", want: http.StatusUnauthorized},
		{name: "garbage", bearer: "a.b.c", want: http.StatusUnauthorized},
		{name: "another server's token", bearer: foreign, want: http.StatusUnauthorized},
		{name: "tampered payload", bearer: tamper(jwt), want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := s.do(t, http.MethodGet, authserver.PathDeploymentsNext, tt.bearer, nil, nil)
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
	t.Run("expired", func(t *testing.T) {
		var offset atomic.Int64
		s2 := start(t, authserver.Options{AutoAccept: true, TokenLifetime: time.Minute,
			Now: func() time.Time { return now.Add(time.Duration(offset.Load())) }})
		jwt2 := s2.token(t, edKey())
		resp, _ := s2.do(t, http.MethodGet, authserver.PathDeploymentsNext, jwt2, nil, nil)
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		offset.Store(int64(time.Minute))
		resp, body := s2.do(t, http.MethodGet, authserver.PathDeploymentsNext, jwt2, nil, nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, string(body), "token expired")
	})
}

func tamper(jwt string) string {
	parts := strings.Split(jwt, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = bytes.Replace(payload, []byte(`"sub":"`), []byte(`"sub":"x`), 1)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

func TestInventory(t *testing.T) {
	s := start(t, authserver.Options{AutoAccept: true})
	jwt := s.token(t, edKey())
	resp, body := s.do(t, http.MethodGet, authserver.PathInventory, jwt, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `[]`, string(body))

	resp, _ = s.do(t, http.MethodPut, authserver.PathInventory, jwt, strings.NewReader(`[{"name":"a","value":"1"},{"name":"b","value":["x"]}]`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = s.do(t, http.MethodPatch, authserver.PathInventory, jwt, strings.NewReader(`[{"name":"a","value":"2"},{"name":"c","value":3}]`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, body = s.do(t, http.MethodGet, authserver.PathInventory, jwt, nil, nil)
	assert.JSONEq(t, `[{"name":"a","value":"2"},{"name":"b","value":["x"]},{"name":"c","value":3}]`, string(body))
	resp, _ = s.do(t, http.MethodPut, authserver.PathInventory, jwt, strings.NewReader(`{"name":"a"}`), nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = s.do(t, http.MethodPut, authserver.PathInventory, "", strings.NewReader(`[]`), nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestUploadStreamsLargeBodies(t *testing.T) {
	s := start(t, authserver.Options{AutoAccept: true})
	jwt := s.token(t, edKey())
	const size = 64 << 20
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for n := 0; n < size; n += len(chunk) {
			h.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	resp, body := s.do(t, http.MethodPost, authserver.PathUpload, jwt, pr, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var got authserver.UploadReply
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, int64(size), got.Bytes)
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), got.SHA256)
}

func TestEcho(t *testing.T) {
	s := start(t, authserver.Options{AutoAccept: true})
	jwt := s.token(t, edKey())
	resp, _ := s.do(t, http.MethodPut, authserver.PathEcho+"/sub?x=1", jwt, strings.NewReader("hello"), map[string]string{"X-Custom": "v"})
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "only the exact echo path")
	resp, body := s.do(t, http.MethodPut, authserver.PathEcho+"?x=1", jwt, strings.NewReader("hello"), map[string]string{"X-Custom": "v"})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var got authserver.EchoReply
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, http.MethodPut, got.Method)
	assert.Equal(t, authserver.PathEcho, got.Path)
	assert.Equal(t, "x=1", got.Query)
	assert.Equal(t, strings.TrimPrefix(s.URL(), "https://"), got.Host)
	assert.Equal(t, "v", got.Header.Get("X-Custom"))
	assert.Empty(t, got.Header.Get("Authorization"))
	assert.Equal(t, int64(5), got.Bytes)
	assert.Equal(t, s.Devices()[0].ID, got.DeviceID)
}

func TestFaultsAndOutage(t *testing.T) {
	s := start(t, authserver.Options{AutoAccept: true})
	key := edKey()
	s.SetFault(authserver.Fault{Status: 503, RetryAfter: "12", Count: 2})
	for range 2 {
		body, sig := signedRequest(t, key, `{"mac":"m"}`)
		resp, out := s.do(t, http.MethodPost, authserver.PathAuth, "", bytes.NewReader(body), map[string]string{authserver.SignatureHeader: sig})
		assert.Equal(t, 503, resp.StatusCode)
		assert.Equal(t, "12", resp.Header.Get("Retry-After"))
		assert.Contains(t, string(out), `"request_id"`)
	}
	status, _ := s.auth(t, key, `{"mac":"m"}`)
	assert.Equal(t, 200, status, "the fault expired after Count requests")
	jwt := s.token(t, key)

	s.SetFault(authserver.Fault{Drop: true})
	body, sig := signedRequest(t, key, `{"mac":"m"}`)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+authserver.PathAuth, bytes.NewReader(body))
	req.Header.Set(authserver.SignatureHeader, sig)
	_, err := s.client.Do(req)
	assert.Error(t, err, "dropped")
	resp, _ := s.do(t, http.MethodGet, authserver.PathDeploymentsNext, jwt, nil, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode, "faults hit the auth endpoint only")
	s.ClearFault()

	s.SetOutage(true)
	req, _ = http.NewRequest(http.MethodGet, s.URL()+authserver.PathDeploymentsNext, nil)
	_, err = s.client.Do(req)
	assert.Error(t, err, "every path is down")
	log := s.RequestLog()
	assert.Equal(t, 0, log[len(log)-1].Status)
	assert.Equal(t, authserver.PathDeploymentsNext, log[len(log)-1].Path)
	s.SetOutage(false)
	resp, _ = s.do(t, http.MethodGet, authserver.PathDeploymentsNext, jwt, nil, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func TestManagementAPI(t *testing.T) {
	s := start(t, authserver.Options{})
	key := edKey()
	s.auth(t, key, `{"mac":"m"}`)
	_, body := s.do(t, http.MethodGet, authserver.PathManagementDevice, "", nil, nil)
	var devs []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(body, &devs))
	require.Len(t, devs, 1)
	assert.Equal(t, "pending", devs[0].Status)
	resp, _ := s.do(t, http.MethodPut, authserver.PathManagementDevice+"/"+devs[0].ID+"/status", "", strings.NewReader(`{"status":"accepted"}`), nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, _ = s.do(t, http.MethodPut, authserver.PathManagementDevice+"/nope/status", "", strings.NewReader(`{"status":"accepted"}`), nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = s.do(t, http.MethodPut, authserver.PathManagementDevice+"/"+devs[0].ID+"/status", "", strings.NewReader(`{"status":"gone"}`), nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	status, _ := s.auth(t, key, `{"mac":"m"}`)
	assert.Equal(t, 200, status)
}

// dialWebSocket performs the client side of the RFC 6455 handshake over
// TLS with HTTP/1.1.
func dialWebSocket(t *testing.T, s testServer, bearer string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL(), "https://"), &tls.Config{RootCAs: testpki.Pool(pki()), NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	req := "GET " + authserver.PathDeviceConnect + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Protocol: protomsg, other\r\nAuthorization: Bearer " + bearer + "\r\n\r\n"
	_, err = io.WriteString(conn, req)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		assert.Equal(t, authserver.WebSocketAccept(key), resp.Header.Get("Sec-WebSocket-Accept"))
		assert.Equal(t, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", authserver.WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "RFC 6455 §1.3 example")
	}
	return conn, br, resp
}

func TestWebSocketEcho(t *testing.T) {
	s := start(t, authserver.Options{AutoAccept: true})
	jwt := s.token(t, edKey())

	_, _, resp := dialWebSocket(t, s, "bad")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	conn, br, resp := dialWebSocket(t, s, jwt)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Equal(t, "protomsg", resp.Header.Get("Sec-WebSocket-Protocol"))
	mask := []byte{1, 2, 3, 4}
	big := bytes.Repeat([]byte("z"), 70000)
	frames := []authserver.Frame{
		{Fin: true, Opcode: 0x1, Payload: []byte("hello")},
		{Fin: false, Opcode: 0x2, Payload: big},
		{Fin: true, Opcode: 0x0, Payload: []byte("tail")},
		{Fin: true, Opcode: 0x9, Payload: []byte("ping")},
	}
	for _, f := range frames {
		require.NoError(t, authserver.WriteFrame(conn, f, mask))
	}
	for i, want := range frames {
		got, err := authserver.ReadFrame(br, false)
		require.NoError(t, err, "frame %d", i)
		if want.Opcode == 0x9 {
			want.Opcode = 0xa // pong
		}
		assert.Equal(t, want, got, "frame %d", i)
	}
	require.NoError(t, authserver.WriteFrame(conn, authserver.Frame{Fin: true, Opcode: 0x8, Payload: []byte{0x03, 0xe8}}, mask))
	got, err := authserver.ReadFrame(br, false)
	require.NoError(t, err)
	assert.Equal(t, authserver.Frame{Fin: true, Opcode: 0x8, Payload: []byte{0x03, 0xe8}}, got)
	_, err = authserver.ReadFrame(br, false)
	assert.ErrorIs(t, err, io.EOF, "the server closes after the close handshake")

	var ws *authserver.Request
	for _, r := range s.RequestLog() {
		if r.Path == authserver.PathDeviceConnect && r.Status == http.StatusSwitchingProtocols {
			ws = &r
		}
	}
	require.NotNil(t, ws, "the upgrade is logged")
	assert.Equal(t, s.Devices()[0].ID, ws.DeviceID)

	t.Run("unmasked client frame is a protocol error", func(t *testing.T) {
		conn, br, resp := dialWebSocket(t, s, jwt)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		require.NoError(t, authserver.WriteFrame(conn, authserver.Frame{Fin: true, Opcode: 0x1, Payload: []byte("x")}, nil))
		got, err := authserver.ReadFrame(br, false)
		require.NoError(t, err)
		assert.Equal(t, []byte{0x03, 0xea}, got.Payload, "close 1002")
	})
	t.Run("close cuts open WebSockets", func(t *testing.T) {
		_, br, resp := dialWebSocket(t, s, jwt)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		s.SetOutage(true)
		_, err := authserver.ReadFrame(br, false)
		assert.Error(t, err)
		s.SetOutage(false)
	})
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = authserver.WriteFrame(&buf, authserver.Frame{Fin: true, Opcode: 1, Payload: []byte("hi")}, []byte{1, 2, 3, 4})
	f.Add(buf.Bytes())
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
	f.Add([]byte{0x89, 0xfe, 0, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := authserver.ReadFrame(bytes.NewReader(data), true)
		if err != nil {
			return
		}
		var out bytes.Buffer
		require.NoError(t, authserver.WriteFrame(&out, fr, []byte{9, 8, 7, 6}))
		again, err := authserver.ReadFrame(&out, true)
		require.NoError(t, err)
		assert.Equal(t, fr, again, "write and read round-trip")
	})
}

func TestRequestLogIsBounded(t *testing.T) {
	s := start(t, authserver.Options{MaxLog: 10})
	for i := range 25 {
		resp, _ := s.do(t, http.MethodGet, "/nothing/"+strings.Repeat("x", i), "", nil, nil)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	log := s.RequestLog()
	assert.LessOrEqual(t, len(log), 10)
	require.NotEmpty(t, log)
	assert.Equal(t, "/nothing/"+strings.Repeat("x", 24), log[len(log)-1].Path, "the newest entries are kept")
	s.ClearRequestLog()
	assert.Empty(t, s.RequestLog())
}

func TestCloseCutsEverythingAndIsIdempotent(t *testing.T) {
	s := start(t, authserver.Options{AutoAccept: true})
	jwt := s.token(t, edKey())
	_, br, resp := dialWebSocket(t, s, jwt)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.NoError(t, s.Close())
	_, err := authserver.ReadFrame(br, false)
	assert.Error(t, err, "the WebSocket was cut")
	assert.NoError(t, s.Close())
	assert.Error(t, s.Start(""), "a closed server cannot start again")
}

func TestDelayEndsWithTheClientAndLifetimeChanges(t *testing.T) {
	now := time.Now()
	s := start(t, authserver.Options{AutoAccept: true, Now: func() time.Time { return now }})
	s.SetTokenLifetime(2 * time.Minute)
	claims, err := authserver.ParseToken(s.token(t, edKey()), s.SigningPublicKey(), now)
	require.NoError(t, err)
	assert.Equal(t, now.Unix()+120, claims.Expires)

	s.SetFault(authserver.Fault{Delay: time.Hour})
	body, sig := signedRequest(t, edKey(), `{"mac":"m"}`)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+authserver.PathAuth, bytes.NewReader(body))
	req.Header.Set(authserver.SignatureHeader, sig)
	_, err = s.client.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// Close waits for handlers: it returns only because the delay ended
	// with the client's request.
	require.NoError(t, s.Close())
}

func TestTenantPreauthorizeDecommission(t *testing.T) {
	s := start(t, authserver.Options{TenantToken: "tenant-A"})
	key := edKey()
	dev, err := s.Preauthorize(`{"serial":"1","mac":"m"}`, pubPEM(t, key))
	require.NoError(t, err)
	assert.Equal(t, authserver.StatusAccepted, dev.Status)
	assert.Equal(t, `{"mac":"m","serial":"1"}`, dev.Identity)
	_, err = s.Preauthorize(`[1]`, pubPEM(t, key))
	assert.ErrorContains(t, err, "identity")
	_, err = s.Preauthorize(`{}`, "junk")
	assert.ErrorContains(t, err, "public key")

	sign := func(tenant string) (int, string) {
		body, err := authapi.BuildRequestBody(`{"mac":"m","serial":"1"}`, pubPEM(t, key), tenant, "")
		require.NoError(t, err)
		sig, err := authapi.Sign(key, body)
		require.NoError(t, err)
		resp, out := s.do(t, http.MethodPost, authserver.PathAuth, "", bytes.NewReader(body), map[string]string{authserver.SignatureHeader: sig})
		return resp.StatusCode, string(out)
	}
	status, _ := sign("")
	assert.Equal(t, http.StatusUnauthorized, status, "no tenant token")
	status, _ = sign("tenant-B")
	assert.Equal(t, http.StatusUnauthorized, status, "another tenant")
	status, jwt := sign("tenant-A")
	require.Equal(t, http.StatusOK, status, "preauthorized without AutoAccept")
	assert.Equal(t, "tenant-A", s.Devices()[0].TenantToken)

	require.NoError(t, s.Decommission(dev.ID))
	assert.Empty(t, s.Devices())
	resp, _ := s.do(t, http.MethodGet, authserver.PathDeploymentsNext, jwt, nil, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a decommissioned device's token is dead")
	status, _ = sign("tenant-A")
	assert.Equal(t, http.StatusUnauthorized, status, "it comes back as a new pending device")
	devs := s.Devices()
	require.Len(t, devs, 1)
	assert.NotEqual(t, dev.ID, devs[0].ID)
	assert.Error(t, s.Decommission("nobody"))
}
