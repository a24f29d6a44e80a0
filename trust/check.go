package trust

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CheckStatus is the outcome of one check.
type CheckStatus string

// Check outcomes. Only CheckFail makes Check report failure.
const (
	CheckPass CheckStatus = "pass"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
	CheckSkip CheckStatus = "skip"
)

// Names of the checks in CheckResult.Name.
const (
	CheckURL               = "url"
	CheckProxy             = "proxy"
	CheckDNS               = "dns"
	CheckConnect           = "connect"
	CheckTLS               = "tls"
	CheckMutualTLS         = "mutual-tls"
	CheckClientCertificate = "client-certificate"
)

// CheckResult is the outcome of one check against one server (Server is
// empty for checks of local settings). It marshals to JSON as is.
type CheckResult struct {
	Server string      `json:"server,omitempty"`
	Name   string      `json:"check"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail,omitempty"`
	Hint   string      `json:"hint,omitempty"`
}

// String formats r as one line, followed by its hint on a second, indented
// line when there is one.
func (r CheckResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s  %-18s", strings.ToUpper(string(r.Status)), r.Name)
	if r.Server != "" {
		fmt.Fprintf(&b, "  %s", r.Server)
	}
	if r.Detail != "" {
		fmt.Fprintf(&b, ": %s", r.Detail)
	}
	if r.Hint != "" {
		fmt.Fprintf(&b, "\n      hint: %s", r.Hint)
	}
	return b.String()
}

// Passed reports whether no result failed.
func Passed(results []CheckResult) bool {
	for _, r := range results {
		if r.Status == CheckFail {
			return false
		}
	}
	return true
}

// Check runs RunChecks and prints one line per result to w. It reports
// whether every check passed (warnings pass); it is the body of
// `mender-agent check`.
func Check(ctx context.Context, s *Store, servers []string, w io.Writer) (ok bool) {
	results := RunChecks(ctx, s, servers)
	for _, r := range results {
		fmt.Fprintln(w, r.String())
	}
	return Passed(results)
}

// RunChecks checks the client certificate and then, for each server URL in
// order: the proxy in use, name resolution, the TCP connection, the TLS
// handshake with certificate verification and, when the server asks for
// one, the client certificate (mutual TLS). A failed step ends that
// server's checks. It uses the store's current trust and blocks until all
// servers are checked or ctx is done.
func RunChecks(ctx context.Context, s *Store, servers []string) []CheckResult {
	results := []CheckResult{s.checkClientCertificate()}
	for _, srv := range servers {
		results = append(results, s.checkServer(ctx, srv)...)
	}
	return results
}

func (s *Store) checkClientCertificate() CheckResult {
	r := CheckResult{Name: CheckClientCertificate}
	c := s.ClientCertificate()
	if c == nil {
		r.Status, r.Detail = CheckSkip, "mutual TLS not configured (HttpsClient.Certificate is empty)"
		return r
	}
	now := s.now()
	r.Detail = fmt.Sprintf("%s subject %q serial %s, valid until %s", s.cfg.ClientCertificate, c.Subject.String(), serialString(c), fmtTime(c.NotAfter))
	switch {
	case now.After(c.NotAfter):
		r.Status = CheckFail
		r.Hint = fmt.Sprintf("the client certificate expired at %s (device time %s); renew it", fmtTime(c.NotAfter), fmtTime(now))
	case now.Before(c.NotBefore):
		r.Status = CheckFail
		r.Hint = fmt.Sprintf("the client certificate is not valid before %s (device time %s)%s", fmtTime(c.NotBefore), fmtTime(now), s.clockAdvice(now))
	case c.NotAfter.Sub(now) <= s.cfg.CertExpiryWarning:
		r.Status = CheckWarn
		r.Hint = fmt.Sprintf("the client certificate expires at %s (in %d days); renew it before then", fmtTime(c.NotAfter), int(c.NotAfter.Sub(now).Hours()/24))
	default:
		r.Status = CheckPass
	}
	return r
}

func (s *Store) checkServer(ctx context.Context, server string) []CheckResult {
	var out []CheckResult
	add := func(name string, st CheckStatus, detail, hint string) {
		out = append(out, CheckResult{Server: server, Name: name, Status: st, Detail: detail, Hint: hint})
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		add(CheckURL, CheckFail, fmt.Sprintf("%q is not a server URL", server), "use https://host[:port]")
		return out
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "http" {
		add(CheckURL, CheckWarn, "plain http: the connection is not encrypted or authenticated", "use an https:// server URL")
	}

	proxyURL, err := s.proxy(&url.URL{Scheme: u.Scheme, Host: addr})
	if err != nil {
		add(CheckProxy, CheckFail, err.Error(), "fix HTTPS_PROXY/HTTP_PROXY")
		return out
	}
	resolveHost := u.Hostname()
	if proxyURL != nil {
		add(CheckProxy, CheckPass, "via proxy "+proxyURL.Redacted(), "")
		resolveHost = proxyURL.Hostname()
	}
	if net.ParseIP(resolveHost) != nil {
		add(CheckDNS, CheckSkip, resolveHost+" is an IP address", "")
	} else {
		addrs, err := net.DefaultResolver.LookupHost(ctx, resolveHost)
		if err != nil {
			add(CheckDNS, CheckFail, err.Error(), fmt.Sprintf("%s does not resolve; check the host name and the device's DNS settings", resolveHost))
			return out
		}
		add(CheckDNS, CheckPass, resolveHost+" resolves to "+strings.Join(addrs, ", "), "")
	}
	d := &net.Dialer{Timeout: dialTimeout}
	if u.Scheme == "http" {
		target := addr
		if proxyURL != nil {
			target = proxyAddr(proxyURL)
		}
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			add(CheckConnect, CheckFail, err.Error(), "the server (or proxy) cannot be reached; check the URL, the network and any firewall")
			return out
		}
		conn.Close()
		add(CheckConnect, CheckPass, "connected to "+target, "")
		return out
	}

	tc, info, err := s.dialTLS(ctx, d.DialContext, "tcp", addr)
	var he *HandshakeError
	if err != nil && !errors.As(err, &he) {
		add(CheckConnect, CheckFail, err.Error(), "the server (or proxy) cannot be reached; check the URL, the network and any firewall")
		return out
	}
	add(CheckConnect, CheckPass, "connected to "+addr, "")
	if err != nil {
		name := CheckTLS
		if clientRejected(err) {
			name = CheckMutualTLS
		}
		add(name, CheckFail, err.Error(), s.Explain(err, server))
		return out
	}
	defer tc.Close()
	st := tc.ConnectionState()
	detail := tls.VersionName(st.Version)
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		detail += fmt.Sprintf(", certificate %q issued by %q, valid until %s", leaf.Subject.String(), leaf.Issuer.String(), fmtTime(leaf.NotAfter))
	}
	if s.cfg.SkipVerify {
		add(CheckTLS, CheckWarn, detail+", NOT verified", "SkipVerify is set: anyone can impersonate the server; remove it")
	} else {
		add(CheckTLS, CheckPass, detail+", verified", "")
	}

	// A TLS 1.3 server judges the client certificate after the handshake,
	// so make one request to learn its verdict.
	reqErr := probe(ctx, tc, u.Host)
	switch {
	case reqErr != nil && clientRejected(reqErr):
		add(CheckMutualTLS, CheckFail, reqErr.Error(), s.Explain(reqErr, server))
	case info.certAsked && info.certSent != nil && len(info.certSent.Certificate) > 0:
		c := info.certSent.Leaf
		add(CheckMutualTLS, CheckPass, fmt.Sprintf("server asked for a client certificate; sent subject %q serial %s", c.Subject.String(), serialString(c)), "")
	case info.certAsked:
		add(CheckMutualTLS, CheckWarn, "server asked for a client certificate; none is configured", "")
	case s.ClientCertificate() != nil:
		add(CheckMutualTLS, CheckSkip, "server did not ask for a client certificate", "")
	}
	if reqErr != nil && !clientRejected(reqErr) {
		add(CheckConnect, CheckWarn, "request after the handshake: "+reqErr.Error(), "")
	}
	return out
}

// probe sends one HEAD request on conn and reads the status line.
func probe(ctx context.Context, conn *tls.Conn, host string) error {
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "https://"+host+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Connection", "close")
	if err := req.Write(conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	return resp.Body.Close()
}
