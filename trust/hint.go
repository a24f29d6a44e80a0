package trust

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// hintContext is what an explanation may use beyond the error itself.
type hintContext struct {
	server     string
	now        time.Time // zero: unknown
	floor      time.Time
	bundle     string
	client     *x509.Certificate // nil: no client certificate configured
	clientPath string
	clientSet  bool // client is known (Store.Explain), not just absent
}

// Hint returns one actionable sentence for a TLS failure in err's chain, or
// "" when err is not a TLS trust problem. It covers unknown authorities
// (with issuer and subject), expired or not yet valid certificates (with the
// validity window, the device time and clock advice), host name mismatches
// (expected name against the certificate's names) and rejected client
// certificates. Store.Explain adds what only the store knows, such as the
// client certificate that was sent.
func Hint(err error) string {
	return explain(err, hintContext{floor: clockFloor})
}

// Explain is Hint with the store's knowledge: the device time, the
// configured ServerCertificate and the client certificate that was
// presented. serverURL, when not empty, names the server in the message
// (as the operator configured it) instead of the verified host name.
func (s *Store) Explain(err error, serverURL string) string {
	hc := hintContext{
		server:     serverURL,
		now:        s.now(),
		floor:      s.floor,
		bundle:     s.cfg.ServerCertificate,
		clientPath: s.cfg.ClientCertificate,
		clientSet:  true,
	}
	if cs := s.client.Load(); cs != nil && cs.cert != nil {
		hc.client = cs.cert.Leaf
	}
	return explain(err, hc)
}

func explain(err error, hc hintContext) string {
	if err == nil {
		return ""
	}
	var sent []*x509.Certificate
	if he, ok := errors.AsType[*HandshakeError](err); ok {
		if he.ClientCertificateRequested {
			hc.client, hc.clientSet = he.ClientCertificate, true
		}
	}
	if ve, ok := errors.AsType[*VerifyError](err); ok {
		if hc.server == "" {
			hc.server = ve.Server
		}
		hc.now, hc.floor, sent = ve.Now, ve.floor, ve.Certificates
		if ve.bundle != "" {
			hc.bundle = ve.bundle
		}
	}
	if he, ok := errors.AsType[*HandshakeError](err); ok && hc.server == "" {
		hc.server = he.Addr
	}
	if hc.server == "" {
		hc.server = "(unknown)"
	}
	if ua, ok := errors.AsType[x509.UnknownAuthorityError](err); ok && ua.Cert != nil {
		return hintUnknownAuthority(hc, ua.Cert, sent)
	}
	if ci, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ci.Cert != nil {
		if ci.Reason == x509.Expired {
			return hintValidity(hc, ci.Cert)
		}
		return fmt.Sprintf("server %s presented certificate %q that cannot be used: %v", hc.server, ci.Cert.Subject.String(), ci)
	}
	if he, ok := errors.AsType[x509.HostnameError](err); ok && he.Certificate != nil {
		return hintHostname(hc, he)
	}
	if errors.Is(err, ErrNoServerName) {
		return fmt.Sprintf("no server name to verify the certificate of server %s against; set tls.Config.ServerName or use the store's Transport", hc.server)
	}
	if clientRejected(err) {
		alert, _ := remoteAlert(err)
		return hintAlert(hc, alert)
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return fmt.Sprintf("server %s does not speak TLS on that port; check the scheme (https://) and port of the server URL", hc.server)
	}
	return ""
}

func hintUnknownAuthority(hc hintContext, cert *x509.Certificate, sent []*x509.Certificate) string {
	where := "ServerCertificate"
	if hc.bundle != "" {
		where += " (" + hc.bundle + ")"
	}
	msg := fmt.Sprintf("server %s presented certificate %q issued by %q, which is not a trusted CA: %s or the system roots must hold the CA that issued it",
		hc.server, cert.Subject.String(), cert.Issuer.String(), where)
	if len(sent) == 1 && !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		msg += "; if that issuer is an intermediate CA, configure the server to send its full certificate chain"
	}
	return msg
}

func hintValidity(hc hintContext, c *x509.Certificate) string {
	window := fmt.Sprintf("valid from %s to %s", fmtTime(c.NotBefore), fmtTime(c.NotAfter))
	if hc.now.IsZero() {
		return fmt.Sprintf("server %s presented certificate %q that is expired or not yet valid (%s); check the device clock",
			hc.server, c.Subject.String(), window)
	}
	clock := "the device time is " + fmtTime(hc.now)
	if hc.now.Before(c.NotBefore) {
		advice := "; check the device clock and the certificate's start date"
		if hc.now.Before(hc.floor) {
			advice = clockWrong(hc)
		}
		return fmt.Sprintf("server %s presented certificate %q that is not valid yet (%s, %s)%s",
			hc.server, c.Subject.String(), window, clock, advice)
	}
	advice := "; renew the certificate on the server"
	if hc.now.Before(hc.floor) {
		advice = clockWrong(hc)
	}
	return fmt.Sprintf("server %s presented certificate %q that has expired (%s, %s)%s",
		hc.server, c.Subject.String(), window, clock, advice)
}

func clockWrong(hc hintContext) string {
	return fmt.Sprintf("; the device clock looks wrong (earlier than %s): check the device clock (NTP, RTC)", fmtTime(hc.floor))
}

// clockAdvice is appended to messages about certificate validity.
func (s *Store) clockAdvice(now time.Time) string {
	if now.Before(s.floor) {
		return clockWrong(hintContext{floor: s.floor})
	}
	return ""
}

func hintHostname(hc hintContext, he x509.HostnameError) string {
	c := he.Certificate
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return fmt.Sprintf("host name mismatch: server %s presented certificate %q without any DNS or IP subject alternative name (a common name is not used for host names); reissue the server certificate with %q",
			hc.server, c.Subject.String(), he.Host)
	}
	return fmt.Sprintf("host name mismatch: expected %q, but certificate %q is for %s; use a server URL with one of those names or reissue the server certificate",
		he.Host, c.Subject.String(), strings.Join(names, ", "))
}

// clientRejected reports whether err is a server's TLS alert about the
// client certificate (or its absence).
func clientRejected(err error) bool {
	alert, ok := remoteAlert(err)
	if ok {
		return true
	}
	he, isHE := errors.AsType[*HandshakeError](err)
	return isHE && he.ClientCertificateRequested && alert == "handshake failure"
}

// clientAlerts are the TLS alerts a server sends about the client
// certificate.
var clientAlerts = map[string]bool{
	"bad certificate":               true,
	"certificate required":          true,
	"unsupported certificate":       true,
	"certificate revoked":           true,
	"certificate expired":           true,
	"unknown certificate":           true,
	"unknown certificate authority": true,
	"access denied":                 true,
}

// remoteAlert finds a TLS alert sent by the peer in err's chain and returns
// its name ("bad certificate").
func remoteAlert(err error) (string, bool) {
	for e := err; e != nil; {
		if op, ok := e.(*net.OpError); ok && op.Op == "remote error" && op.Err != nil {
			name := strings.TrimPrefix(op.Err.Error(), "tls: ")
			return name, clientAlerts[name]
		}
		if ae, ok := e.(tls.AlertError); ok {
			name := strings.TrimPrefix(ae.Error(), "tls: ")
			return name, clientAlerts[name]
		}
		e = errors.Unwrap(e)
	}
	return "", false
}

func hintAlert(hc hintContext, alert string) string {
	code := "tls alert " + strings.ReplaceAll(alert, " ", "_")
	if hc.clientSet && hc.client == nil {
		return fmt.Sprintf("mutual TLS failed: server %s requires a client certificate (%s) but none is configured; set HttpsClient.Certificate and HttpsClient.Key",
			hc.server, code)
	}
	if hc.client == nil {
		return fmt.Sprintf("mutual TLS failed: server %s rejected the client certificate or its absence (%s); check HttpsClient.Certificate and HttpsClient.Key",
			hc.server, code)
	}
	c := hc.client
	from := ""
	if hc.clientPath != "" {
		from = hc.clientPath + " "
	}
	msg := fmt.Sprintf("mutual TLS failed: server %s rejected the client certificate (%s); sent %ssubject %q serial %s issued by %q, valid until %s; the server must trust its issuer",
		hc.server, code, from, c.Subject.String(), serialString(c), c.Issuer.String(), fmtTime(c.NotAfter))
	if !hc.now.IsZero() && hc.now.After(c.NotAfter) {
		msg += "; it has expired: renew it"
	}
	return msg
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
