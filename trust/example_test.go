package trust_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/trust"
)

// The daemon builds one Store from mender.conf and hands its HTTP client to
// the auth API client and the forwarder; a failed request is explained once
// where it is handled.
func ExampleNew() {
	log := logrus.New()
	s, err := trust.New(trust.Config{
		ServerCertificate: "/etc/mender/server.crt", // -E/--trusted-certs replaces it
		ClientCertificate: "/etc/mender/client.crt", // HttpsClient.Certificate
		ClientKey:         "/etc/mender/client.key", // HttpsClient.Key
		Logger:            log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mender-agent:", err)
		return
	}
	client := s.HTTPClient(time.Minute)
	const server = "https://hosted.mender.io"
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, server+"/api/devices/v1/authentication/auth_requests", nil)
	resp, err := client.Do(req)
	if err != nil {
		log.WithError(err).Error(s.Explain(err, server))
		return
	}
	resp.Body.Close()
	// On SIGHUP: _ = s.Reload()
}

// Hint turns a crypto/x509 error into advice an operator can act on.
func ExampleHint() {
	err := fmt.Errorf("auth request: %w", x509.HostnameError{
		Certificate: &x509.Certificate{
			Subject:  pkix.Name{CommonName: "mender.example.com"},
			DNSNames: []string{"mender.example.com", "docker.mender.io"},
		},
		Host: "10.0.0.5",
	})
	fmt.Println(trust.Hint(err))
	// Output:
	// host name mismatch: expected "10.0.0.5", but certificate "CN=mender.example.com" is for mender.example.com, docker.mender.io; use a server URL with one of those names or reissue the server certificate
}
