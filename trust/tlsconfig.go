package trust

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrNoServerName means a handshake had no server name to verify the
// certificate against: TLSConfig was used for an IP address without setting
// ServerName. Use ClientConfig(address) or Transport for such servers.
var ErrNoServerName = errors.New("no server name to verify the server certificate against")

// VerifyError is a server certificate that failed verification. It unwraps
// to the crypto/x509 error (x509.UnknownAuthorityError,
// x509.CertificateInvalidError, x509.HostnameError, ...), so callers can
// classify it with errors.As; Hint turns it into advice.
type VerifyError struct {
	// Server is the name the certificate was checked against.
	Server string
	// Now is the device time the verification used.
	Now time.Time
	// Certificates are the certificates the server sent, leaf first.
	Certificates []*x509.Certificate
	// Err is the crypto/x509 verification error.
	Err error

	floor  time.Time // earliest plausible device time
	bundle string    // ServerCertificate path, for advice
}

// Error names the server name and the crypto/x509 reason.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify certificate of %s: %v", e.Server, e.Err)
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *VerifyError) Unwrap() error { return e.Err }

// TLSConfig returns a new client TLS configuration using the store's
// current trust: TLS 1.2 or later, SNI, verification of the certificate
// chain against the current roots and of the host name against
// ConnectionState.ServerName, and the current client certificate when the
// server asks for one. Files are re-checked before each handshake, so one
// TLSConfig stays current for the life of the process.
//
// Verification runs in VerifyConnection (InsecureSkipVerify is set only so
// the standard, unchangeable RootCAs check does not run first); do not
// replace VerifyConnection. Servers addressed by IP address send no SNI, so
// for them set ServerName, or better use ClientConfig or Transport.
func (s *Store) TLSConfig() *tls.Config {
	return s.ClientConfig("")
}

// ClientConfig is TLSConfig for connections to serverName (a DNS name or an
// IP address), which is sent as SNI when it is a name and always used to
// verify the certificate.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection verifies against the current roots.
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := serverName
			if name == "" {
				name = cs.ServerName
			}
			return s.verify(name, cs.PeerCertificates)
		},
		GetClientCertificate: s.getClientCertificate,
		Time:                 s.now,
	}
}

// verify checks a server's certificates against the current roots.
func (s *Store) verify(name string, certs []*x509.Certificate) error {
	if s.cfg.SkipVerify {
		return nil
	}
	if name == "" {
		return ErrNoServerName
	}
	if len(certs) == 0 {
		return fmt.Errorf("verify certificate of %s: the server sent no certificate", name)
	}
	s.refresh()
	rs := s.roots.Load()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := s.now()
	_, err := certs[0].Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         rs.pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return &VerifyError{Server: name, Now: now, Certificates: certs, Err: err, floor: s.floor, bundle: s.cfg.ServerCertificate}
	}
	return nil
}

// getClientCertificate answers a server's certificate request with the
// current client certificate, or with none when mutual TLS is not
// configured.
func (s *Store) getClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	s.refresh()
	cs := s.client.Load()
	if cs.cert == nil {
		s.log.Debug("the server asks for a client certificate but HttpsClient is not configured; sending none")
		return &tls.Certificate{}, nil
	}
	s.reportClientExpiry(cs.cert.Leaf)
	if err := cri.SupportsCertificate(cs.cert); err != nil {
		s.log.WithError(err).Warn("the server may not accept the client certificate; sending it anyway")
	}
	return cs.cert, nil
}
