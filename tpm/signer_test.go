package tpm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testpki"
	"github.com/mender-agent/mender-agent/tpm"
	"github.com/mender-agent/mender-agent/tpm/tpmtest"
	"github.com/mender-agent/mender-agent/tpm/tss2"
)

func TestSignRejects(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	ec := loadOrCreate(t, options(sw, filepath.Join(dir, "ec.pem")))
	rsaOpts := options(sw, filepath.Join(dir, "rsa.pem"))
	rsaOpts.Type = "rsa-2048"
	rk := loadOrCreate(t, rsaOpts)
	d256 := sha256.Sum256([]byte("m"))
	d1 := sha1.Sum([]byte("m"))

	tests := []struct {
		name    string
		key     *tpm.Key
		digest  []byte
		opts    crypto.SignerOpts
		wantMsg string
	}{
		{name: "RSA-PSS", key: rk, digest: d256[:], opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}, wantMsg: "RSA-PSS is not supported"},
		{name: "SHA-1", key: ec, digest: d1[:], opts: crypto.SHA1, wantMsg: "hash SHA-1 is not supported"},
		{name: "no hash", key: ec, digest: d256[:], opts: crypto.Hash(0), wantMsg: "no hash given"},
		{name: "nil opts", key: ec, digest: d256[:], opts: nil, wantMsg: "opts is nil"},
		{name: "digest too short", key: ec, digest: d256[:31], opts: crypto.SHA256, wantMsg: "digest is 31 bytes, SHA-256 needs 32"},
		{name: "digest of another hash", key: rk, digest: d256[:], opts: crypto.SHA384, wantMsg: "SHA-384 needs 48"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := tc.key.Sign(rand.Reader, tc.digest, tc.opts)
			require.Error(t, err)
			assert.Nil(t, sig)
			assert.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}

func TestSignAfterClose(t *testing.T) {
	sw := tpmtest.Start(t)
	k := loadOrCreate(t, options(sw, filepath.Join(t.TempDir(), "k.pem")))
	require.NoError(t, k.Close())
	require.NoError(t, k.Close(), "Close is idempotent")
	d := sha256.Sum256([]byte("m"))
	_, err := k.Sign(nil, d[:], crypto.SHA256)
	assert.ErrorContains(t, err, "key is closed")
}

// TestConcurrentKeysOnOneDevice signs from many goroutines with two keys
// that share one TPM connection.
func TestConcurrentKeysOnOneDevice(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	a := loadOrCreate(t, options(sw, filepath.Join(dir, "a.pem")))
	b := loadOrCreate(t, options(sw, filepath.Join(dir, "b.pem")))
	require.NotEqual(t, a.Public(), b.Public())

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		k := a
		if i%2 == 1 {
			k = b
		}
		wg.Go(func() {
			d := sha256.Sum256([]byte{byte(i)})
			sig, err := k.Sign(nil, d[:], crypto.SHA256)
			if err == nil {
				if verr := verifyErr(k.Public(), d[:], sig); verr != nil {
					err = verr
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	// Closing one key leaves the shared connection usable for the other.
	require.NoError(t, a.Close())
	d := sha256.Sum256([]byte("after"))
	sig, err := b.Sign(nil, d[:], crypto.SHA256)
	require.NoError(t, err)
	assert.NoError(t, verifyErr(b.Public(), d[:], sig))
}

func verifyErr(pub crypto.PublicKey, digest, sig []byte) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("public key is %T, not ECDSA", pub)
	}
	if !ecdsa.VerifyASN1(k, digest, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}

// TestSignReloadsLostHandle flushes the key behind the package's back (as
// a TPM reset or another program on a device without a resource manager
// would) and expects Sign to load it again.
func TestSignReloadsLostHandle(t *testing.T) {
	sw := tpmtest.Start(t)
	k := loadOrCreate(t, options(sw, filepath.Join(t.TempDir(), "k.pem")))
	sw.Restart(t) // transient objects are gone
	d := sha256.Sum256([]byte("m"))
	sig, err := k.Sign(nil, d[:], crypto.SHA256)
	require.NoError(t, err)
	verify(t, k.Public(), crypto.SHA256, d[:], sig)
}

// TestOwnerPassword covers an owner hierarchy with a password: without it
// the SRK cannot be made and the error says what to configure.
func TestOwnerPassword(t *testing.T) {
	sw := tpmtest.Start(t)
	tt, err := tpm.Open(sw.Device())
	require.NoError(t, err)
	_, err = tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: []byte("owner-secret")},
	}.Execute(tt)
	require.NoError(t, err)
	require.NoError(t, tt.Close())

	path := filepath.Join(t.TempDir(), "k.pem")
	_, err = tpm.LoadOrCreate(context.Background(), options(sw, path))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "parent password")
	assert.NotContains(t, err.Error(), "owner-secret")
	assert.NoFileExists(t, path)

	opts := options(sw, path)
	opts.ParentPassword = []byte("owner-secret")
	k := loadOrCreate(t, opts)
	require.NoError(t, k.Close())
	k = loadOrCreate(t, opts) // and load again with it
	d := sha256.Sum256([]byte("m"))
	sig, err := k.Sign(nil, d[:], crypto.SHA256)
	require.NoError(t, err)
	verify(t, k.Public(), crypto.SHA256, d[:], sig)
}

// TestLockout drives the TPM into dictionary-attack lockout with wrong
// passwords on a DA-protected key, then checks that such keys report
// ErrLockout with the way out while our noDA key keeps signing.
func TestLockout(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	ours := loadOrCreate(t, options(sw, filepath.Join(dir, "ours.pem")))

	tt, err := tpm.Open(sw.Device())
	require.NoError(t, err)
	defer tt.Close()
	tmpl := tpm2.ECCSRKTemplate
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	srk, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tmpl)}.Execute(tt)
	require.NoError(t, err)
	daKey := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, SignEncrypt: true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   tpm2.TPMECCNistP256,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
	parent := tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)}
	created, err := tpm2.Create{
		ParentHandle: parent,
		InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: []byte("pin")}}},
		InPublic:     tpm2.New2B(daKey),
	}.Execute(tt)
	require.NoError(t, err)
	loaded, err := tpm2.Load{ParentHandle: parent, InPrivate: created.OutPrivate, InPublic: created.OutPublic}.Execute(tt)
	require.NoError(t, err)
	_, err = tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(tt)
	require.NoError(t, err)
	d := sha256.Sum256([]byte("m"))
	for i := 0; ; i++ {
		require.Less(t, i, 50, "the TPM never entered lockout")
		_, err = tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: tpm2.PasswordAuth([]byte("wrong"))},
			Digest:     tpm2.TPM2BDigest{Buffer: d[:]},
			InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(tt)
		require.Error(t, err)
		if errors.Is(err, tpm2.TPMRCLockout) {
			break
		}
	}
	_, err = tpm2.FlushContext{FlushHandle: loaded.ObjectHandle}.Execute(tt)
	require.NoError(t, err)

	// A DA-protected key file (as openssl genpkey makes them) now fails
	// with the lockout explained.
	daPath := filepath.Join(dir, "da.pem")
	pemData, err := (&tss2.Key{Parent: tss2.ParentOwner, Public: tpm2.Marshal(created.OutPublic), Private: tpm2.Marshal(created.OutPrivate)}).EncodePEM()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(daPath, pemData, 0o600))
	opts := options(sw, daPath)
	opts.Generate = false
	da, err := tpm.Load(context.Background(), opts)
	require.NoError(t, err, "loading needs only the parent's authorization")
	t.Cleanup(func() { _ = da.Close() })
	_, err = da.Sign(nil, d[:], crypto.SHA256)
	require.ErrorIs(t, err, tpm.ErrLockout)
	assert.Contains(t, err.Error(), "tpm2_dictionarylockout --clear-lockout")

	// Our key is noDA: it still signs.
	sig, err := ours.Sign(nil, d[:], crypto.SHA256)
	require.NoError(t, err)
	verify(t, ours.Public(), crypto.SHA256, d[:], sig)
}

func TestRSA3072(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-3072 key creation takes about a second on swtpm")
	}
	sw := tpmtest.Start(t)
	opts := options(sw, filepath.Join(t.TempDir(), "k.pem"))
	opts.Type = "rsa-3072"
	k := loadOrCreate(t, opts)
	assert.Equal(t, "rsa-3072", k.Type())
	d := sha256.Sum256([]byte("m"))
	sig, err := k.Sign(nil, d[:], crypto.SHA256)
	require.NoError(t, err)
	verify(t, k.Public(), crypto.SHA256, d[:], sig)
}

// TestMutualTLS uses the TPM key as a TLS client certificate key against a
// real TLS server on loopback that requires and verifies client
// certificates, for TLS 1.2 and 1.3. RSA keys go through TLSSigner, which
// adds the RSA-PSS that TLS 1.3 requires.
func TestMutualTLS(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	ec := loadOrCreate(t, options(sw, filepath.Join(dir, "ec.pem")))
	rsaOpts := options(sw, filepath.Join(dir, "rsa.pem"))
	rsaOpts.Type = tpm.TypeRSA2048
	rk := loadOrCreate(t, rsaOpts)
	ca := testpki.NewCA("test CA")
	server := ca.Issue(testpki.Options{})

	tests := []struct {
		name    string
		signer  crypto.Signer
		version uint16
	}{
		{name: "ECDSA TLS 1.2", signer: ec, version: tls.VersionTLS12},
		{name: "ECDSA TLS 1.3", signer: ec, version: tls.VersionTLS13},
		{name: "RSA TLS 1.2", signer: rk.TLSSigner(), version: tls.VersionTLS12},
		{name: "RSA TLS 1.3 (PSS)", signer: rk.TLSSigner(), version: tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clientDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
				SerialNumber: big.NewInt(4242),
				Subject:      pkix.Name{CommonName: "device-tpm"},
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(time.Hour),
				KeyUsage:     x509.KeyUsageDigitalSignature,
				ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}, ca.Cert, tc.signer.Public(), ca.Key)
			require.NoError(t, err)
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{server.TLSCertificate()},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    testpki.Pool(ca),
				MinVersion:   tc.version,
				MaxVersion:   tc.version,
			})
			require.NoError(t, err)
			defer ln.Close()
			peer := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					peer <- "accept: " + err.Error()
					return
				}
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					peer <- "handshake: " + err.Error()
					return
				}
				peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				_, _ = io.Copy(io.Discard, c)
			}()

			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
				RootCAs:      testpki.Pool(ca),
				ServerName:   "localhost",
				Certificates: []tls.Certificate{{Certificate: [][]byte{clientDER}, PrivateKey: tc.signer}},
				MinVersion:   tc.version,
				MaxVersion:   tc.version,
			})
			require.NoError(t, err)
			require.NoError(t, conn.Handshake())
			assert.Equal(t, tc.version, conn.ConnectionState().Version)
			assert.Equal(t, "device-tpm", <-peer, "the server must have verified the TPM-signed handshake")
			require.NoError(t, conn.Close())
		})
	}
}

func TestTLSSignerPSS(t *testing.T) {
	sw := tpmtest.Start(t)
	opts := options(sw, filepath.Join(t.TempDir(), "rsa.pem"))
	opts.Type = tpm.TypeRSA2048
	k := loadOrCreate(t, opts)
	s := k.TLSSigner()
	assert.Equal(t, k.Public(), s.Public())
	d := sha256.Sum256([]byte("m"))

	sig, err := s.Sign(rand.Reader, d[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash})
	require.NoError(t, err)
	assert.NoError(t, rsa.VerifyPSS(k.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}))

	_, err = s.Sign(rand.Reader, d[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 20})
	assert.ErrorContains(t, err, "salt length 20 is not supported")

	sig, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
	require.NoError(t, err)
	assert.NoError(t, rsa.VerifyPKCS1v15(k.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig))
}
