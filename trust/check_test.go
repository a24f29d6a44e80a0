package trust_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/trust"
)

type nameStatus struct {
	name   string
	status trust.CheckStatus
}

func summary(results []trust.CheckResult, server string) []nameStatus {
	var out []nameStatus
	for _, r := range results {
		if r.Server == server {
			out = append(out, nameStatus{r.Name, r.Status})
		}
	}
	return out
}

func find(t *testing.T, results []trust.CheckResult, server, name string) trust.CheckResult {
	t.Helper()
	for _, r := range results {
		if r.Server == server && r.Name == name {
			return r
		}
	}
	require.FailNow(t, "no result", "%s %s", server, name)
	return trust.CheckResult{}
}

func TestCheckGoodSetup(t *testing.T) {
	serverCA, deviceCA := newCA("Server CA"), newCA("Device CA")
	cert := clientCert(deviceCA, "device-0001", now.AddDate(1, 0, 0))
	log, _ := newLogger()
	s, err := trust.New(mtlsConfig(t, bundleFile(t, serverCA), cert, log))
	require.NoError(t, err)
	srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: deviceCA})
	_, port, _ := net.SplitHostPort(srv.Host())
	byName := "https://localhost:" + port

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	ok := trust.Check(ctx, s, []string{srv.URL, byName}, &out)
	assert.True(t, ok, out.String())

	results := trust.RunChecks(ctx, s, []string{srv.URL, byName})
	assert.Equal(t, []nameStatus{{trust.CheckClientCertificate, trust.CheckPass}}, summary(results, ""))
	assert.Equal(t, []nameStatus{
		{trust.CheckDNS, trust.CheckSkip},
		{trust.CheckConnect, trust.CheckPass},
		{trust.CheckTLS, trust.CheckPass},
		{trust.CheckMutualTLS, trust.CheckPass},
	}, summary(results, srv.URL))
	assert.Equal(t, []nameStatus{
		{trust.CheckDNS, trust.CheckPass},
		{trust.CheckConnect, trust.CheckPass},
		{trust.CheckTLS, trust.CheckPass},
		{trust.CheckMutualTLS, trust.CheckPass},
	}, summary(results, byName))
	assert.Contains(t, find(t, results, byName, trust.CheckDNS).Detail, "localhost resolves to ")
	assert.Equal(t, fmt.Sprintf(`server asked for a client certificate; sent subject "CN=device-0001,O=mender-agent tests" serial %x`, cert.Cert.SerialNumber),
		find(t, results, srv.URL, trust.CheckMutualTLS).Detail)
	tlsResult := find(t, results, srv.URL, trust.CheckTLS)
	assert.Equal(t, `TLS 1.3, certificate "CN=localhost,O=mender-agent tests" issued by "CN=Server CA,O=mender-agent tests", valid until 2026-09-01T12:00:00Z, verified`, tlsResult.Detail)
	assert.Contains(t, out.String(), "PASS  tls                 "+srv.URL+": TLS 1.3")

	js, err := json.Marshal(tlsResult)
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"server":%q,"check":"tls","status":"pass","detail":%q}`, srv.URL, tlsResult.Detail), string(js))
}

func TestCheckBrokenSetup(t *testing.T) {
	serverCA, deviceCA := newCA("Server CA"), newCA("Device CA")
	cert := clientCert(deviceCA, "device-0001", now.AddDate(0, 0, 5))
	log, _ := newLogger()
	cfg := mtlsConfig(t, bundleFile(t, serverCA), cert, log)
	s, err := trust.New(cfg)
	require.NoError(t, err)

	rogue := startServer(t, serverCert(newCA("Rogue CA")), serverOptions{})
	strict := startServer(t, serverCert(serverCA), serverOptions{clientCAs: newCA("Other Device CA")})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := "http://" + strict.Host() // reachable, but not encrypted
	servers := []string{rogue.URL, strict.URL, closed, "mender.example.com", plain}
	var out bytes.Buffer
	assert.False(t, trust.Check(ctx, s, servers, &out))
	results := trust.RunChecks(ctx, s, servers)

	cc := find(t, results, "", trust.CheckClientCertificate)
	assert.Equal(t, trust.CheckWarn, cc.Status)
	assert.Equal(t, "the client certificate expires at 2026-06-06T12:00:00Z (in 5 days); renew it before then", cc.Hint)

	assert.Equal(t, []nameStatus{{trust.CheckDNS, trust.CheckSkip}, {trust.CheckConnect, trust.CheckPass}, {trust.CheckTLS, trust.CheckFail}},
		summary(results, rogue.URL))
	r := find(t, results, rogue.URL, trust.CheckTLS)
	assert.True(t, strings.HasPrefix(r.Hint, "server "+rogue.URL+` presented certificate "CN=localhost,O=mender-agent tests" issued by "CN=Rogue CA,O=mender-agent tests", which is not a trusted CA`), r.Hint)

	assert.Equal(t, []nameStatus{{trust.CheckDNS, trust.CheckSkip}, {trust.CheckConnect, trust.CheckPass}, {trust.CheckTLS, trust.CheckPass}, {trust.CheckMutualTLS, trust.CheckFail}},
		summary(results, strict.URL))
	r = find(t, results, strict.URL, trust.CheckMutualTLS)
	assert.Equal(t, fmt.Sprintf(`mutual TLS failed: server %s rejected the client certificate (tls alert unknown_certificate_authority); sent %s subject "CN=device-0001,O=mender-agent tests" serial %x issued by "CN=Device CA,O=mender-agent tests", valid until 2026-06-06T12:00:00Z; the server must trust its issuer`,
		strict.URL, cfg.ClientCertificate, cert.Cert.SerialNumber), r.Hint)

	assert.Equal(t, []nameStatus{{trust.CheckDNS, trust.CheckSkip}, {trust.CheckConnect, trust.CheckFail}}, summary(results, closed))
	assert.Equal(t, []nameStatus{{trust.CheckURL, trust.CheckFail}}, summary(results, "mender.example.com"))
	assert.Equal(t, []nameStatus{{trust.CheckURL, trust.CheckWarn}, {trust.CheckDNS, trust.CheckSkip}, {trust.CheckConnect, trust.CheckPass}}, summary(results, plain))

	text := out.String()
	assert.Contains(t, text, "FAIL  tls                 "+rogue.URL)
	assert.Contains(t, text, "\n      hint: server "+rogue.URL+" presented certificate")
	assert.Contains(t, text, "WARN  client-certificate")
}
