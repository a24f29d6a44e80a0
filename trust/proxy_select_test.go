package trust

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProxySelection checks the proxy chosen per request URL against the
// rules of net/http's ProxyFromEnvironment.
func TestProxySelection(t *testing.T) {
	const (
		httpsProxy = "http://secure.proxy.test:3128"
		httpProxy  = "http://plain.proxy.test:3128"
	)
	both := map[string]string{"HTTPS_PROXY": httpsProxy, "HTTP_PROXY": httpProxy}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"HTTPS_PROXY": httpsProxy, "HTTP_PROXY": httpProxy}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		url     string
		want    string // "" for a direct connection
		wantErr string
	}{
		{name: "https uses HTTPS_PROXY", env: both, url: "https://mender.example.com", want: httpsProxy},
		{name: "http uses HTTP_PROXY", env: both, url: "http://mender.example.com", want: httpProxy},
		{name: "https without HTTPS_PROXY is direct", env: map[string]string{"HTTP_PROXY": httpProxy}, url: "https://mender.example.com"},
		{name: "lower-case variable", env: map[string]string{"https_proxy": httpsProxy}, url: "https://mender.example.com", want: httpsProxy},
		{name: "upper case wins", env: map[string]string{"HTTPS_PROXY": httpsProxy, "https_proxy": httpProxy}, url: "https://mender.example.com", want: httpsProxy},
		{name: "value without scheme is http", env: map[string]string{"HTTPS_PROXY": "proxy.test:8080"}, url: "https://mender.example.com", want: "http://proxy.test:8080"},
		{name: "localhost is direct", env: both, url: "https://localhost:8443"},
		{name: "loopback IPv4 is direct", env: both, url: "https://127.0.0.1"},
		{name: "loopback IPv6 is direct", env: both, url: "https://[::1]:443"},
		{name: "star matches all", env: with("NO_PROXY", "*"), url: "https://mender.example.com"},
		{name: "star in a list matches all", env: with("NO_PROXY", "a.test, *"), url: "https://10.1.1.1"},
		{name: "domain matches itself", env: with("NO_PROXY", "example.com"), url: "https://example.com"},
		{name: "domain matches subdomains", env: with("NO_PROXY", "example.com"), url: "https://mender.example.com"},
		{name: "domain does not match a longer name", env: with("NO_PROXY", "example.com"), url: "https://notexample.com", want: httpsProxy},
		{name: "dot domain matches subdomains", env: with("NO_PROXY", ".example.com"), url: "https://mender.example.com"},
		{name: "dot domain does not match itself", env: with("NO_PROXY", ".example.com"), url: "https://example.com", want: httpsProxy},
		{name: "star-dot domain is a dot domain", env: with("NO_PROXY", "*.example.com"), url: "https://example.com", want: httpsProxy},
		{name: "star without dot is not a wildcard", env: with("NO_PROXY", "*example.com"), url: "https://myexample.com", want: httpsProxy},
		{name: "case does not matter", env: with("no_proxy", "Example.COM"), url: "https://Mender.EXAMPLE.com"},
		{name: "list with spaces", env: with("NO_PROXY", "other.test , example.com"), url: "https://mender.example.com"},
		{name: "domain with matching port", env: with("NO_PROXY", "example.com:443"), url: "https://example.com"},
		{name: "domain with other port", env: with("NO_PROXY", "example.com:443"), url: "https://example.com:8443", want: httpsProxy},
		{name: "http default port", env: with("NO_PROXY", "example.com:80"), url: "http://example.com"},
		{name: "IPv4 address", env: with("NO_PROXY", "192.168.1.10"), url: "https://192.168.1.10:8443"},
		{name: "IPv4 address with other port", env: with("NO_PROXY", "192.168.1.10:8080"), url: "https://192.168.1.10", want: httpsProxy},
		{name: "IPv4 address with its port", env: with("NO_PROXY", "192.168.1.10:8080"), url: "https://192.168.1.10:8080"},
		{name: "IPv4 address does not match a name", env: with("NO_PROXY", "192.168.1.10"), url: "https://mender.example.com", want: httpsProxy},
		{name: "IPv4 range", env: with("NO_PROXY", "10.0.0.0/8"), url: "https://10.20.30.40"},
		{name: "outside the IPv4 range", env: with("NO_PROXY", "10.0.0.0/8"), url: "https://11.0.0.1", want: httpsProxy},
		{name: "IPv6 address with port", env: with("NO_PROXY", "[2001:db8::1]:443"), url: "https://[2001:db8::1]"},
		{name: "IPv6 range", env: with("NO_PROXY", "2001:db8::/32"), url: "https://[2001:db8:1::5]:443"},
		{name: "empty entries ignored", env: with("NO_PROXY", ",, ,"), url: "https://mender.example.com", want: httpsProxy},
		{name: "CGI refuses HTTP_PROXY", env: with("REQUEST_METHOD", "GET"), url: "http://mender.example.com",
			wantErr: "refusing to use HTTP_PROXY value in CGI environment; see golang.org/s/cgihttpproxy"},
		{name: "CGI keeps HTTPS_PROXY", env: with("REQUEST_METHOD", "GET"), url: "https://mender.example.com", want: httpsProxy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := proxyFromEnv(func(k string) string { return tt.env[k] })
			require.NoError(t, err)
			u, err := url.Parse(tt.url)
			require.NoError(t, err)
			got, err := sel(u)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.want == "" {
				assert.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, tt.want, got.String())
		})
	}
}

// FuzzNoProxy feeds NO_PROXY values and request hosts to the selector:
// it must never panic, never proxy loopback requests, and never proxy
// anything when the list holds "*".
func FuzzNoProxy(f *testing.F) {
	for _, s := range []struct{ noProxy, host string }{
		{"example.com", "mender.example.com"},
		{"*.example.com:443, 10.0.0.0/8", "10.1.1.1"},
		{"[2001:db8::1]:443,*", "[2001:db8::1]:8443"},
		{":80,[],*,.", "example.com:80"},
		{"", "127.0.0.1"},
	} {
		f.Add(s.noProxy, s.host)
	}
	f.Fuzz(func(t *testing.T, noProxy, host string) {
		n := parseNoProxy(noProxy)
		u := &url.URL{Scheme: "https", Host: host}
		use := n.useProxy(u)
		if h := u.Hostname(); h == "localhost" || h == "127.0.0.1" || h == "::1" {
			assert.False(t, use, "loopback %q is never proxied", host)
		}
		if n.all {
			assert.False(t, use, "NO_PROXY %q holds *", noProxy)
		}
	})
}
