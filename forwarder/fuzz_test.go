package forwarder

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
)

// recordingTransport is a fake server transport that records what the
// forwarder sends and answers 200.
type recordingTransport struct{ got []*url.URL }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	r.got = append(r.got, &u)
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}

// FuzzNeverForwardsAuthentication sends arbitrary request targets through
// the forwarder and checks that nothing it forwards can be read, by any
// normalization, as the authentication API.
func FuzzNeverForwardsAuthentication(f *testing.F) {
	for _, seed := range []string{
		"/api/devices/v1/authentication/auth_requests",
		"/api/devices/v1/inventory/device/attributes",
		"//api//devices/v1/authentication",
		"/api/devices/v1/x/../authentication/auth_requests",
		"/api/devices/v1%2fauthentication/auth_requests",
		"/%2561pi/devices/v1/authentication",
		"/API/DEVICES/V1/AUTHENTICATION",
		`/api\devices\v1\authentication`,
		"http:api/devices/v1/authentication/auth_requests",
		"http://h/api/devices/v1/authentication/auth_requests?x=1",
		"/api/devices/v1/authentication;x=1",
		"*",
		"/%252561pi/devices/v1/authentication",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")))
		if err != nil {
			return
		}
		rt := &recordingTransport{}
		fw, err := New(Config{Transport: rt})
		if err != nil {
			t.Fatal(err)
		}
		if err := fw.SetUpstream("https://server.example"); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		fw.ServeHTTP(rec, req)
		for _, u := range rt.got {
			for _, p := range []string{u.Path, u.EscapedPath(), u.RawPath, u.Opaque} {
				if p == "" {
					continue
				}
				for range maxDecodes { // repeated decoding, as a chain of servers might
					if d, err := url.PathUnescape(p); err == nil {
						p = d
					}
				}
				c := strings.ToLower(path.Clean("/" + strings.ReplaceAll(p, `\`, "/")))
				if strings.HasPrefix(c, AuthPathPrefix) {
					t.Fatalf("target %q was forwarded as %q (%q)", target, u.String(), c)
				}
			}
			if u.Host != "server.example" || u.Scheme != "https" {
				t.Fatalf("target %q was forwarded to %q", target, u.String())
			}
		}
	})
}
