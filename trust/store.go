package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// ErrNoRoots means neither the system nor ServerCertificate provides a
// single trusted certificate, so no server could ever be verified.
var ErrNoRoots = errors.New("no trusted root certificates")

// ErrClientCertificate means the mutual-TLS settings cannot be used: only
// one of certificate and key is set, or a file does not hold what it should.
var ErrClientCertificate = errors.New("client certificate unusable")

// Store holds the current TLS trust material and re-reads it when the files
// change. All methods are safe for concurrent use. A Store starts no
// goroutines: files are checked (one stat each) on the connection path, just
// before a TLS handshake needs them.
type Store struct {
	cfg    Config
	log    logrus.FieldLogger
	now    func() time.Time
	floor  time.Time
	system *x509.CertPool
	proxy  func(*url.URL) (*url.URL, error)

	roots  atomic.Pointer[rootSet]
	client atomic.Pointer[clientSet]
	// expiryReported is when (s.now, Unix nanoseconds) the client
	// certificate's expiry was last logged; 0 means never.
	expiryReported atomic.Int64

	mu      sync.Mutex // serialises reloads and guards the stamps below
	rootsAt fileStamp
	certAt  fileStamp
	keyAt   fileStamp
}

// rootSet is one immutable generation of trusted roots.
type rootSet struct {
	pool   *x509.CertPool
	bundle []*x509.Certificate // from ServerCertificate, file order
}

// clientSet is one immutable generation of the client certificate.
type clientSet struct {
	cert *tls.Certificate // nil: no mutual TLS configured
}

// New checks cfg, loads the system roots, the ServerCertificate bundle and
// the client certificate and key, and reads the proxy variables. A missing
// or partly broken bundle is a logged warning; an error is returned for
// settings that cannot work: no usable root at all (ErrNoRoots, unless
// SkipVerify is set), only one of
// client certificate and key, an unreadable client certificate or key
// (ErrClientCertificate), or a proxy variable that is not a proxy URL.
func New(cfg Config) (*Store, error) {
	s := &Store{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.CertExpiryWarning <= 0 {
		s.cfg.CertExpiryWarning = DefaultCertExpiryWarning
	}
	s.floor = clockFloor
	if cfg.BuildTime.After(s.floor) {
		s.floor = cfg.BuildTime
	}
	hasKey := cfg.ClientKey != "" || cfg.ClientSigner != nil
	switch {
	case cfg.ClientCertificate != "" && !hasKey:
		return nil, fmt.Errorf("%w: HttpsClient.Certificate is set to %s but HttpsClient.Key is empty; set both for mutual TLS or neither",
			ErrClientCertificate, cfg.ClientCertificate)
	case cfg.ClientCertificate == "" && hasKey:
		return nil, fmt.Errorf("%w: HttpsClient.Key is set but HttpsClient.Certificate is empty; set both for mutual TLS or neither",
			ErrClientCertificate)
	}

	env := cfg.Env
	if env == nil {
		env = osGetenv
	}
	proxy, err := proxyFromEnv(env)
	if err != nil {
		return nil, err
	}
	s.proxy = proxy

	systemRoots := cfg.SystemRoots
	if systemRoots == nil {
		systemRoots = x509.SystemCertPool
	}
	s.system, err = systemRoots()
	if err != nil || s.system == nil {
		s.log.WithError(err).Warn("system root certificates unavailable; only ServerCertificate is trusted")
		s.system = x509.NewCertPool()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rs, err := s.loadRoots()
	if err != nil {
		if !isNotExist(err) {
			s.log.WithField(FieldFile, cfg.ServerCertificate).Warnf("ServerCertificate %s: %v; using the system roots only", cfg.ServerCertificate, err)
		} else {
			s.log.WithField(FieldFile, cfg.ServerCertificate).Warnf("ServerCertificate %s does not exist; using the system roots only", cfg.ServerCertificate)
		}
		rs = &rootSet{pool: s.system.Clone()}
	}
	if len(rs.bundle) == 0 && s.system.Equal(x509.NewCertPool()) && !cfg.SkipVerify {
		where := "ServerCertificate is not set"
		if cfg.ServerCertificate != "" {
			where = "ServerCertificate " + cfg.ServerCertificate + " holds no usable certificate"
		}
		return nil, fmt.Errorf("%w: the system CA store is empty (install ca-certificates or set SSL_CERT_FILE) and %s", ErrNoRoots, where)
	}
	s.roots.Store(rs)

	cs, err := s.loadClient()
	if err != nil {
		return nil, err
	}
	s.client.Store(cs)

	if cfg.SkipVerify {
		s.log.Warn("SkipVerify is set: server certificates are NOT verified and any server, or anyone in between, can impersonate it; use it only for testing")
	}
	return s, nil
}

// loadRoots reads ServerCertificate and returns a new root generation. The
// caller holds s.mu. It records the file's stamp whatever the outcome. It
// fails when the file is missing or yields no certificate at all; skipped
// blocks of an otherwise usable bundle are logged as warnings.
func (s *Store) loadRoots() (*rootSet, error) {
	path := s.cfg.ServerCertificate
	pool := s.system.Clone()
	if path == "" {
		return &rootSet{pool: pool}, nil
	}
	s.rootsAt = stampOf(path)
	data, err := readLimited(path, maxBundleSize)
	if err != nil {
		return nil, err
	}
	certs, problems := ParseBundle(data)
	log := s.log.WithField(FieldFile, path)
	for _, p := range problems {
		log.Warnf("ServerCertificate %s: %v", path, p)
	}
	if len(certs) == 0 {
		if len(problems) == 0 {
			return nil, errors.New("file is empty; expected one or more PEM certificates")
		}
		if len(problems) == 1 {
			return nil, fmt.Errorf("no usable certificate: %v", problems[0])
		}
		return nil, fmt.Errorf("no usable certificate (%d blocks skipped, first %v)", len(problems), problems[0])
	}
	now := s.now()
	for i, c := range certs {
		pool.AddCert(c)
		if now.After(c.NotAfter) {
			log.WithField(FieldSubject, c.Subject.String()).Warnf("ServerCertificate %s: certificate %d (%s) expired at %s; it no longer verifies any server",
				path, i+1, c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	log.WithField(FieldCount, len(certs)).Infof("trusting %d certificate(s) from ServerCertificate %s in addition to the system roots", len(certs), path)
	return &rootSet{pool: pool, bundle: certs}, nil
}

// loadClient reads the client certificate and key. The caller holds s.mu.
func (s *Store) loadClient() (*clientSet, error) {
	certPath := s.cfg.ClientCertificate
	if certPath == "" {
		return &clientSet{}, nil
	}
	s.certAt = stampOf(certPath)
	if s.cfg.ClientSigner == nil {
		s.keyAt = stampOf(s.cfg.ClientKey)
	}
	data, err := readLimited(certPath, maxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("%w: HttpsClient.Certificate %s: %w", ErrClientCertificate, certPath, err)
	}
	certs, problems := ParseBundle(data)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: HttpsClient.Certificate %s: %v", ErrClientCertificate, certPath, problems[0])
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: HttpsClient.Certificate %s holds no certificate", ErrClientCertificate, certPath)
	}
	key := s.cfg.ClientSigner
	if key == nil {
		key, err = s.loadKey(s.cfg.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("%w: HttpsClient.Key %s: %w", ErrClientCertificate, s.cfg.ClientKey, err)
		}
	}
	leaf := certs[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: HttpsClient.Certificate %s (%s) does not belong to the key HttpsClient.Key %s; install the matching pair",
			ErrClientCertificate, certPath, leaf.Subject, s.cfg.ClientKey)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	s.expiryReported.Store(0)
	s.reportClientExpiry(leaf)
	return &clientSet{cert: tc}, nil
}

// expiryReportInterval is how often a client certificate that is about to
// expire (or has expired) is reported while the daemon keeps using it.
const expiryReportInterval = 24 * time.Hour

// reportClientExpiry logs an expired, not yet valid or soon expiring client
// certificate, at most once per expiryReportInterval.
func (s *Store) reportClientExpiry(leaf *x509.Certificate) {
	now := s.now()
	expiring := now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) <= s.cfg.CertExpiryWarning
	if !expiring {
		return
	}
	last := s.expiryReported.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < expiryReportInterval {
		return
	}
	if !s.expiryReported.CompareAndSwap(last, now.UnixNano()) {
		return // another handshake is reporting it
	}
	log := s.log.WithFields(logrus.Fields{
		FieldFile:    s.cfg.ClientCertificate,
		FieldSubject: leaf.Subject.String(),
		FieldSerial:  serialString(leaf),
		FieldExpires: leaf.NotAfter.UTC().Format(time.RFC3339),
	})
	switch {
	case now.After(leaf.NotAfter):
		log.Errorf("client certificate %s expired at %s (device time %s); servers requiring mutual TLS will reject it: renew it",
			s.cfg.ClientCertificate, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		log.Warnf("client certificate %s is not valid before %s (device time %s)%s",
			s.cfg.ClientCertificate, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), s.clockAdvice(now))
	case leaf.NotAfter.Sub(now) <= s.cfg.CertExpiryWarning:
		days := int(leaf.NotAfter.Sub(now).Hours() / 24)
		log.Warnf("client certificate %s expires at %s (in %d days); renew it before then",
			s.cfg.ClientCertificate, leaf.NotAfter.UTC().Format(time.RFC3339), days)
	}
}

// loadKey reads the mutual-TLS private key.
func (s *Store) loadKey(path string) (crypto.Signer, error) {
	if s.cfg.LoadClientKey != nil {
		return s.cfg.LoadClientKey(path)
	}
	data, err := readLimited(path, 1<<20)
	if err != nil {
		return nil, err
	}
	return parsePrivateKey(data)
}

// parsePrivateKey returns the first private key in PEM data. Errors never
// include key material.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted; the mutual-TLS key must be unencrypted (protect it with file permissions or a TPM)")
		case "TSS2 PRIVATE KEY":
			return nil, errors.New("the key is a TPM key; it needs the TPM key backend")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %s does not parse: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
	}
}

// refresh re-reads every file whose stamp changed since it was last read.
// A file that fails to load keeps the previous generation; the failure is
// logged once per file version.
func (s *Store) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.cfg.ServerCertificate; p != "" && stampOf(p) != s.rootsAt {
		s.reloadRoots()
	}
	if p := s.cfg.ClientCertificate; p != "" {
		changed := stampOf(p) != s.certAt
		if s.cfg.ClientSigner == nil && stampOf(s.cfg.ClientKey) != s.keyAt {
			changed = true
		}
		if changed {
			_ = s.reloadClient()
		}
	}
}

func (s *Store) reloadRoots() error {
	path := s.cfg.ServerCertificate
	rs, err := s.loadRoots()
	if err != nil {
		old := s.roots.Load()
		s.log.WithField(FieldFile, path).Errorf("ServerCertificate %s changed but cannot be used (%v); keeping the %d certificate(s) loaded before",
			path, err, len(old.bundle))
		return fmt.Errorf("ServerCertificate %s: %w", path, err)
	}
	s.roots.Store(rs)
	return nil
}

func (s *Store) reloadClient() error {
	cs, err := s.loadClient()
	if err != nil {
		s.log.WithField(FieldFile, s.cfg.ClientCertificate).Errorf("client certificate changed but cannot be used (%v); keeping the one loaded before", err)
		return err
	}
	s.client.Store(cs)
	if cs.cert != nil {
		s.log.WithFields(logrus.Fields{
			FieldFile:    s.cfg.ClientCertificate,
			FieldSubject: cs.cert.Leaf.Subject.String(),
			FieldSerial:  serialString(cs.cert.Leaf),
		}).Info("loaded client certificate")
	}
	return nil
}

// Reload re-reads the ServerCertificate bundle and the client certificate
// and key now, whether or not they changed (for SIGHUP). A part that fails
// keeps its last good generation; the returned error says what failed.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.cfg.ServerCertificate != "" {
		errs = append(errs, s.reloadRoots())
	}
	if s.cfg.ClientCertificate != "" {
		errs = append(errs, s.reloadClient())
	}
	return errors.Join(errs...)
}

// ClientCertificate returns the client certificate presented to servers
// that ask for one, or nil when mutual TLS is not configured. It re-reads the
// files first if they changed.
func (s *Store) ClientCertificate() *x509.Certificate {
	s.refresh()
	if cs := s.client.Load(); cs.cert != nil {
		return cs.cert.Leaf
	}
	return nil
}

// TrustedCertificates returns the certificates currently trusted from
// ServerCertificate, in file order (the system roots are not included).
func (s *Store) TrustedCertificates() []*x509.Certificate {
	s.refresh()
	return append([]*x509.Certificate(nil), s.roots.Load().bundle...)
}

// WarnIfInsecure logs a warning naming server when SkipVerify is set and
// reports whether it is; the auth client calls it on every authentication so
// an insecure device never goes unnoticed.
func (s *Store) WarnIfInsecure(server string) bool {
	if !s.cfg.SkipVerify {
		return false
	}
	s.log.WithField(FieldServer, server).Warn("authenticating without verifying the server certificate (SkipVerify is set)")
	return true
}

func serialString(c *x509.Certificate) string {
	return fmt.Sprintf("%x", c.SerialNumber)
}
