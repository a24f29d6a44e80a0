package trust

import (
	"crypto"
	"crypto/x509"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultCertExpiryWarning is how long before its expiry the client
// certificate starts to be reported, when Config.CertExpiryWarning is zero.
const DefaultCertExpiryWarning = 30 * 24 * time.Hour

// clockFloor is the earliest plausible device time: a clock before it has
// not been set (an RTC that lost power, NTP not synchronised yet).
var clockFloor = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Log field names used by this package.
const (
	FieldFile    = "file"
	FieldServer  = "server"
	FieldSubject = "subject"
	FieldSerial  = "serial"
	FieldExpires = "not_after"
	FieldCount   = "certificates"
)

// Config is everything a Store needs. The zero value trusts the system roots
// only, presents no client certificate and verifies servers.
type Config struct {
	// ServerCertificate is the path of a PEM bundle whose certificates are
	// trusted in addition to the system roots (mender.conf
	// ServerCertificate, or -E/--trusted-certs). Any number of
	// certificates is allowed, which is how a CA rotation overlaps. ""
	// means none.
	ServerCertificate string
	// SkipVerify disables every check of the server certificate. It is for
	// test setups only and is logged loudly.
	SkipVerify bool
	// ClientCertificate and ClientKey are the mutual-TLS certificate (leaf
	// first, then any chain certificates) and its private key
	// (mender.conf HttpsClient.Certificate and HttpsClient.Key). Both or
	// neither must be set, unless ClientSigner provides the key.
	ClientCertificate string
	ClientKey         string
	// ClientSigner, when set, is the mutual-TLS private key (for example a
	// TPM-resident key) and ClientKey is not read. It must be safe for
	// concurrent use.
	ClientSigner crypto.Signer
	// LoadClientKey, when set, loads the key at ClientKey instead of the
	// built-in PEM reader (PKCS#8, PKCS#1, SEC1), so the caller can route
	// TSS2 key files to the TPM backend. It is called again whenever the
	// key file changes.
	LoadClientKey func(path string) (crypto.Signer, error)
	// CertExpiryWarning is how long before the client certificate expires
	// a warning is logged; zero means DefaultCertExpiryWarning.
	CertExpiryWarning time.Duration
	// BuildTime, when set, is a time the device clock can never be
	// earlier than (for example the build date of the image); earlier
	// device times are reported as a wrong clock. 2025-01-01 is always
	// such a floor.
	BuildTime time.Time
	// Now is the clock used for certificate validity; nil means time.Now.
	Now func() time.Time
	// Logger receives warnings about bundles, client certificates and
	// SkipVerify; nil discards them.
	Logger logrus.FieldLogger
	// Env looks up proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY in
	// either case); nil means os.Getenv.
	Env func(string) string
	// SystemRoots returns the system root pool; nil means
	// x509.SystemCertPool, which honours SSL_CERT_FILE and SSL_CERT_DIR.
	// The returned pool is not modified.
	SystemRoots func() (*x509.CertPool, error)
}
