package trust

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

func osGetenv(name string) string { return os.Getenv(name) }

// proxyFromEnv reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY (upper case
// first, then lower case, as net/http does) through env and returns the
// proxy selector. It rejects a proxy variable that is not an http or https
// proxy URL, so a typo is reported at start and not as a mysterious dial
// failure later.
func proxyFromEnv(env func(string) string) (func(*url.URL) (*url.URL, error), error) {
	get := func(names ...string) (string, string) {
		for _, n := range names {
			if v := env(n); v != "" {
				return n, v
			}
		}
		return names[0], ""
	}
	httpsName, httpsVal := get("HTTPS_PROXY", "https_proxy")
	httpName, httpVal := get("HTTP_PROXY", "http_proxy")
	_, noProxy := get("NO_PROXY", "no_proxy")
	for _, v := range []struct{ name, value string }{{httpsName, httpsVal}, {httpName, httpVal}} {
		if v.value == "" {
			continue
		}
		if err := checkProxyURL(v.value); err != nil {
			return nil, fmt.Errorf("proxy variable %s=%s: %w; use http://[user:password@]host:port", v.name, redactProxy(v.value), err)
		}
	}
	sel := &proxySelector{noProxy: parseNoProxy(noProxy), cgi: env("REQUEST_METHOD") != ""}
	// checkProxyURL has parsed both values already.
	if httpsVal != "" {
		sel.https, _ = parseProxyURL(httpsVal)
	}
	if httpVal != "" {
		sel.http, _ = parseProxyURL(httpVal)
	}
	return sel.proxyFor, nil
}

// proxySelector picks the proxy for a request URL the way net/http's
// ProxyFromEnvironment does (golang.org/x/net/http/httpproxy, which the
// standard library vendors), from values read once through the injected
// environment. The one difference: host names are compared as written,
// without converting internationalized names to their xn-- form, so such
// a name matches a NO_PROXY entry only when both are spelled alike.
type proxySelector struct {
	http, https *url.URL // nil: no proxy for that scheme
	noProxy     noProxy
	cgi         bool
}

func (p *proxySelector) proxyFor(u *url.URL) (*url.URL, error) {
	var proxy *url.URL
	switch u.Scheme {
	case "https":
		proxy = p.https
	case "http":
		proxy = p.http
		if proxy != nil && p.cgi {
			return nil, errors.New("refusing to use HTTP_PROXY value in CGI environment; see golang.org/s/cgihttpproxy")
		}
	}
	if proxy == nil || !p.noProxy.useProxy(u) {
		return nil, nil
	}
	return proxy, nil
}

// noProxy is a parsed NO_PROXY list: IP addresses and CIDR ranges, domain
// suffixes, each optionally with a port, or "*" for everything.
type noProxy struct {
	all     bool
	ips     []noProxyIP
	nets    []*net.IPNet
	domains []noProxyDomain
}

// noProxyIP is an address entry; port "" matches every port.
type noProxyIP struct {
	ip   net.IP
	port string
}

// noProxyDomain is a domain entry stored with a leading dot, so it matches
// every subdomain; exact also matches the domain itself (entries written
// without a leading "." or "*.").
type noProxyDomain struct {
	suffix string
	port   string
	exact  bool
}

// parseNoProxy parses a comma-separated NO_PROXY value. Entries that are
// not understood are ignored, as net/http does.
func parseNoProxy(v string) noProxy {
	var n noProxy
	if v == "*" {
		n.all = true
		return n
	}
	for _, e := range strings.Split(v, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			n.all = true
			return n
		}
		if _, cidr, err := net.ParseCIDR(e); err == nil {
			n.nets = append(n.nets, cidr)
			continue
		}
		host, port, err := net.SplitHostPort(e)
		if err == nil {
			if host == "" {
				continue
			}
			if host[0] == '[' && host[len(host)-1] == ']' {
				host = host[1 : len(host)-1]
			}
		} else {
			host = e
		}
		if ip := net.ParseIP(host); ip != nil {
			n.ips = append(n.ips, noProxyIP{ip: ip, port: port})
			continue
		}
		if host == "" {
			continue
		}
		if strings.HasPrefix(host, "*.") {
			host = host[1:]
		}
		d := noProxyDomain{suffix: host, port: port}
		if host[0] != '.' {
			d.exact, d.suffix = true, "."+host
		}
		n.domains = append(n.domains, d)
	}
	return n
}

// useProxy reports whether a request to u goes through the proxy: not for
// localhost and loopback addresses, nor for NO_PROXY matches.
func (n *noProxy) useProxy(u *url.URL) bool {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	// A host that does not survive the round trip through host:port is
	// malformed; net/http connects to it directly (and fails there).
	host, port, err := net.SplitHostPort(net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return false
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return false
	}
	host = strings.ToLower(strings.TrimSpace(host))
	if n.all {
		return false
	}
	if ip != nil {
		for _, c := range n.nets {
			if c.Contains(ip) {
				return false
			}
		}
		for _, e := range n.ips {
			if e.ip.Equal(ip) && (e.port == "" || e.port == port) {
				return false
			}
		}
	}
	for _, d := range n.domains {
		if (strings.HasSuffix(host, d.suffix) || d.exact && host == d.suffix[1:]) && (d.port == "" || d.port == port) {
			return false
		}
	}
	return true
}

// parseProxyURL parses a proxy variable the way net/http does: a value
// without a scheme means http://value.
func parseProxyURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil && strings.Contains(v, "://") {
		// Report the parser's reason without the URL it quotes, which
		// may hold a password.
		// url.Error's inner message can quote part of the value (a bad
		// percent escape in the password), so none of it is used.
		return nil, errors.New("not a valid URL (check its percent-encoding and port)")
	}
	if err != nil || u.Scheme == "" || u.Host == "" {
		if u2, err2 := url.Parse("http://" + v); err2 == nil {
			return u2, nil
		}
	}
	if err != nil {
		return nil, errors.New("not a URL")
	}
	return u, nil
}

func checkProxyURL(v string) error {
	u, err := parseProxyURL(v)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("unsupported proxy scheme %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("no proxy host")
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return fmt.Errorf("bad proxy port %q", p)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return fmt.Errorf("a proxy URL has no path or query")
	}
	return nil
}

// redactProxy hides the password of a proxy variable for messages.
func redactProxy(v string) string {
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Redacted()
	}
	if i := strings.LastIndex(v, "@"); i >= 0 {
		return "xxxxx@" + v[i+1:]
	}
	return v
}

// proxyAddr is host:port of a proxy URL, with the scheme's default port.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// dialProxy connects to the proxy at u (over TLS for an https proxy) and
// opens a CONNECT tunnel to addr, authenticating with the URL's user
// information.
func (s *Store) dialProxy(ctx context.Context, dial dialFunc, u *url.URL, addr string) (net.Conn, error) {
	conn, err := dial(ctx, "tcp", proxyAddr(u))
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", u.Redacted(), err)
	}
	if u.Scheme == "https" {
		tc := tls.Client(conn, s.ClientConfig(u.Hostname()))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: %w", u.Redacted(), err)
		}
		conn = tc
	}
	if err := connectTunnel(ctx, conn, u, addr); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// connectTunnel sends CONNECT addr over conn and waits for a 2xx answer.
func connectTunnel(ctx context.Context, conn net.Conn, u *url.URL, addr string) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pw))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("proxy %s: CONNECT %s: %w", u.Redacted(), addr, ctxErr(ctx, err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Errorf("proxy %s: CONNECT %s: %w", u.Redacted(), addr, ctxErr(ctx, err))
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusProxyAuthRequired:
		return fmt.Errorf("proxy %s: CONNECT %s: %s; check the user and password in the proxy variable", u.Redacted(), addr, resp.Status)
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("proxy %s: CONNECT %s: %s", u.Redacted(), addr, resp.Status)
	case br.Buffered() > 0:
		return fmt.Errorf("proxy %s: CONNECT %s: the proxy sent data before the TLS handshake", u.Redacted(), addr)
	}
	return nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
