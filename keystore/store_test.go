package keystore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CET", 3600)) }

func TestLoadOrCreateGenerates(t *testing.T) {
	for _, typ := range []string{"", TypeECDSAP384, TypeRSA2048} {
		t.Run("type "+typ, func(t *testing.T) {
			if strings.HasPrefix(typ, "rsa") && testing.Short() {
				t.Skip("RSA generation is slow")
			}
			base := privateDir(t)
			dir := filepath.Join(base, "var", "lib", "mender")
			path := filepath.Join(dir, DefaultFileName)
			log, hook := newTestLogger()
			k, err := LoadOrCreate(Options{Path: path, Generate: true, Type: typ, Logger: log})
			require.NoError(t, err)
			want := typ
			if want == "" {
				want = DefaultType
			}
			assert.Equal(t, want, k.Type())
			assert.Equal(t, path, k.Path())

			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "key file mode")
			di, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o700), di.Mode().Perm(), "created data dir mode")

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n"), "written as PKCS#8")
			assert.Equal(t, string(k.PublicKeyPEM()), string(runOpenSSL(t, data, "pkey", "-pubout")), "openssl reads the written key")

			require.NotNil(t, hook.LastEntry())
			assert.Equal(t, "generated a new device key", hook.LastEntry().Message)
			assert.Equal(t, k.Fingerprint(), hook.LastEntry().Data[fieldFingerprint])
			assertNoSecretsLogged(t, hook.AllEntries(), data)

			// Idempotent: the next call loads the same key.
			again, err := LoadOrCreate(Options{Path: path, Generate: true, Type: typ})
			require.NoError(t, err)
			assert.Equal(t, k.Fingerprint(), again.Fingerprint())
		})
	}
}

func TestLoadOrCreateKeepsExistingKeyOfOtherType(t *testing.T) {
	path := filepath.Join(privateDir(t), DefaultFileName)
	orig := testKey(t, TypeRSA3072) // a Mender 3.x device
	writeFile(t, filepath.Dir(path), DefaultFileName, pkcs8PEM(t, orig), 0o600)
	log, hook := newTestLogger()
	k, err := LoadOrCreate(Options{Path: path, Generate: true, Type: TypeEd25519, Logger: log})
	require.NoError(t, err)
	assert.Equal(t, orig.Fingerprint(), k.Fingerprint())
	require.Len(t, hook.AllEntries(), 1)
	assert.Equal(t, logrus.WarnLevel, hook.LastEntry().Level)
	assert.Equal(t, "rsa-3072", hook.LastEntry().Data[fieldKeyType])
}

func TestLoadOrCreateEncryptsWithPassphrase(t *testing.T) {
	path := filepath.Join(privateDir(t), DefaultFileName)
	k, err := LoadOrCreate(Options{Path: path, Generate: true, Passphrase: []byte(testPass)})
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"))
	assert.Equal(t, string(k.PublicKeyPEM()), string(runOpenSSL(t, data, "pkey", "-pubout", "-passin", "pass:"+testPass)))
	_, err = LoadOrCreate(Options{Path: path, Generate: true})
	assert.ErrorIs(t, err, ErrPassphraseRequired, "an encrypted key without passphrase is an error, never replaced")
	again, err := LoadOrCreate(Options{Path: path, Generate: true, Passphrase: []byte(testPass)})
	require.NoError(t, err)
	assert.Equal(t, k.Fingerprint(), again.Fingerprint())
}

func TestLoadOrCreateFixesPermissions(t *testing.T) {
	dir := privateDir(t)
	k := testKey(t, TypeEd25519)
	path := writeFile(t, dir, DefaultFileName, pkcs8PEM(t, k), 0o644)
	for _, generate := range []bool{true, false} {
		require.NoError(t, os.Chmod(path, 0o644))
		log, hook := newTestLogger()
		got, err := LoadOrCreate(Options{Path: path, Generate: generate, Logger: log})
		require.NoError(t, err)
		assert.Equal(t, k.Fingerprint(), got.Fingerprint())
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		require.Len(t, hook.AllEntries(), 1)
		assert.Equal(t, logrus.WarnLevel, hook.LastEntry().Level)
		assert.Equal(t, "-rw-r--r--", hook.LastEntry().Data[fieldMode])
		assert.Equal(t, path, hook.LastEntry().Data[fieldPath])
	}
}

func TestLoadOrCreateDirectoryChecks(t *testing.T) {
	t.Run("world-writable", func(t *testing.T) {
		dir := privateDir(t)
		require.NoError(t, os.Chmod(dir, 0o777))
		path := filepath.Join(dir, DefaultFileName)
		_, err := LoadOrCreate(Options{Path: path, Generate: true})
		require.ErrorIs(t, err, ErrInsecureDir)
		assert.EqualError(t, err, fmt.Sprintf("key directory is writable by all users: %s has mode -rwxrwxrwx, so any user could replace the device key; run `chmod o-w %s` (0700 is recommended)", dir, dir))
		assert.NoFileExists(t, path, "nothing is generated in an insecure directory")
	})
	t.Run("group-writable warns", func(t *testing.T) {
		dir := privateDir(t)
		require.NoError(t, os.Chmod(dir, 0o770))
		log, hook := newTestLogger()
		_, err := LoadOrCreate(Options{Path: filepath.Join(dir, DefaultFileName), Generate: true, Logger: log})
		require.NoError(t, err)
		require.NotEmpty(t, hook.AllEntries())
		assert.Equal(t, logrus.WarnLevel, hook.AllEntries()[0].Level)
		assert.Equal(t, "key directory is writable by its group; members could replace the device key (0700 is recommended)", hook.AllEntries()[0].Message)
	})
	t.Run("existing directory mode is kept", func(t *testing.T) {
		dir := privateDir(t)
		require.NoError(t, os.Chmod(dir, 0o755))
		_, err := LoadOrCreate(Options{Path: filepath.Join(dir, DefaultFileName), Generate: true})
		require.NoError(t, err)
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	})
}

func TestStaticKey(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(privateDir(t), "device.key")
		_, err := LoadOrCreate(Options{Path: path})
		require.ErrorIs(t, err, ErrStaticKey)
		require.ErrorIs(t, err, ErrKeyNotFound)
		assert.EqualError(t, err, fmt.Sprintf("load static device key: device key not found: %s does not exist (static device key is never generated or replaced); provide the file or unset Security.AuthPrivateKey", path))
		assert.NoFileExists(t, path)
	})
	t.Run("corrupt is left alone", func(t *testing.T) {
		dir := privateDir(t)
		path := writeFile(t, dir, "device.key", []byte("garbage"), 0o600)
		_, err := LoadOrCreate(Options{Path: path, Now: testNow})
		require.ErrorIs(t, err, ErrCorruptKey)
		assert.EqualError(t, err, fmt.Sprintf("load static device key %s: device key file is corrupt: no PEM data (expected a -----BEGIN ... PRIVATE KEY----- block); it is never replaced: restore or re-provision it", path))
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "garbage", string(data))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "nothing moved or created")
	})
	t.Run("rotate refused", func(t *testing.T) {
		k := testKey(t, TypeEd25519)
		path := writeFile(t, privateDir(t), "device.key", pkcs8PEM(t, k), 0o600)
		_, err := Rotate(Options{Path: path})
		require.ErrorIs(t, err, ErrStaticKey)
		assert.EqualError(t, err, fmt.Sprintf("rotate device key %s: static device key is never generated or replaced; replace the provisioned file instead", path))
		got, err := Load(path, nil)
		require.NoError(t, err)
		assert.Equal(t, k.Fingerprint(), got.Fingerprint())
	})
	t.Run("loads", func(t *testing.T) {
		k := testKey(t, TypeECDSAP256)
		path := writeFile(t, privateDir(t), "device.key", pkcs8PEM(t, k), 0o600)
		got, err := LoadOrCreate(Options{Path: path})
		require.NoError(t, err)
		assert.Equal(t, k.Fingerprint(), got.Fingerprint())
	})
}

func TestLoadOrCreateMovesCorruptKeyAside(t *testing.T) {
	dir := privateDir(t)
	corrupt := []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI")
	path := writeFile(t, dir, DefaultFileName, corrupt, 0o600)
	// An earlier corrupt file from the same second must survive too.
	earlier := writeFile(t, dir, DefaultFileName+".corrupt-20260314T140926Z", []byte("older evidence"), 0o600)

	log, hook := newTestLogger()
	k, err := LoadOrCreate(Options{Path: path, Generate: true, Logger: log, Now: testNow})
	require.NoError(t, err)

	moved := path + ".corrupt-20260314T140926Z-1"
	data, err := os.ReadFile(moved)
	require.NoError(t, err)
	assert.Equal(t, string(corrupt), string(data), "the corrupt file is kept as evidence")
	old, err := os.ReadFile(earlier)
	require.NoError(t, err)
	assert.Equal(t, "older evidence", string(old))

	got, err := Load(path, nil)
	require.NoError(t, err)
	assert.Equal(t, k.Fingerprint(), got.Fingerprint())

	entries := hook.AllEntries()
	require.Len(t, entries, 2)
	assert.Equal(t, logrus.ErrorLevel, entries[0].Level)
	assert.Contains(t, entries[0].Message, "the device will appear on the server as a new pending device")
	assert.Equal(t, moved, entries[0].Data[fieldMovedTo])
	assert.ErrorIs(t, entries[0].Data[logrus.ErrorKey].(error), ErrCorruptKey)
	assert.Equal(t, "generated a new device key", entries[1].Message)
}

func TestLoadOrCreateKeepsNonCorruptFailures(t *testing.T) {
	// Parsable but refused keys are not "corrupt": replacing them would
	// silently change the device's identity.
	small := runOpenSSL(t, nil, "genrsa", "-traditional", "1024")
	path := writeFile(t, privateDir(t), DefaultFileName, small, 0o600)
	_, err := LoadOrCreate(Options{Path: path, Generate: true, Now: testNow})
	require.ErrorIs(t, err, ErrUnsupportedKey)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(small), string(data))
}

func TestLoadOrCreateRemovesStaleTemporaryFiles(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(dir, DefaultFileName)
	stale := writeFile(t, dir, "."+DefaultFileName+".tmp-123456", []byte("half a key"), 0o600)
	other := writeFile(t, dir, ".other.tmp-1", []byte("not ours"), 0o600)
	_, err := LoadOrCreate(Options{Path: path, Generate: true})
	require.NoError(t, err)
	assert.NoFileExists(t, stale)
	assert.FileExists(t, other)
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "empty path", opts: Options{Generate: true},
			wantErr: "device key path is empty; set Security.AuthPrivateKey or the data directory"},
		{name: "pkcs11 uri", opts: Options{Path: "pkcs11:token=dev;object=key"},
			wantErr: `unsupported device key: "pkcs11:token=dev;object=key" is a PKCS#11 URI, not a file; the file key backend cannot use it`},
		{name: "bad type", opts: Options{Path: "/x", Type: "rsa-1024"},
			wantErr: `unsupported device key: key type "rsa-1024" cannot be generated; choose one of ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadOrCreate(tt.opts)
			assert.EqualError(t, err, tt.wantErr)
			_, err = Rotate(tt.opts)
			assert.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestRotate(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(dir, DefaultFileName)
	orig := testKey(t, TypeRSA3072)
	origPEM := pkcs8PEM(t, orig)
	writeFile(t, dir, DefaultFileName, origPEM, 0o600)
	log, hook := newTestLogger()
	opts := Options{Path: path, Generate: true, Logger: log, Now: testNow}

	first, err := Rotate(opts)
	require.NoError(t, err)
	assert.Equal(t, TypeEd25519, first.Type())
	assert.NotEqual(t, orig.Fingerprint(), first.Fingerprint())
	assertFileKey(t, path, first.Fingerprint())
	prev, err := os.ReadFile(path + PreviousSuffix)
	require.NoError(t, err)
	assert.Equal(t, string(origPEM), string(prev), "the replaced key is kept byte for byte")
	fi, err := os.Stat(path + PreviousSuffix)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, "replaced the device key; the previous key is kept: the device will appear on the server as a new pending device unless the new key was preauthorized", hook.LastEntry().Message)

	// A second rotation keeps both earlier keys.
	second, err := Rotate(opts)
	require.NoError(t, err)
	assertFileKey(t, path, second.Fingerprint())
	assertFileKey(t, path+PreviousSuffix, first.Fingerprint())
	assertFileKey(t, path+".previous-20260314T140926Z", orig.Fingerprint())

	// With no key yet, Rotate creates one and keeps nothing.
	fresh := filepath.Join(privateDir(t), DefaultFileName)
	k, err := Rotate(Options{Path: fresh, Generate: true, Type: TypeECDSAP256})
	require.NoError(t, err)
	assert.Equal(t, TypeECDSAP256, k.Type())
	assert.NoFileExists(t, fresh+PreviousSuffix)
}

func TestRotateAfterInterruptedRotation(t *testing.T) {
	// A crash after .previous was written but before the new key replaced
	// the old one leaves .previous equal to the current key; retrying must
	// not push that copy aside as if it were an older key.
	dir := privateDir(t)
	orig := pkcs8PEM(t, testKey(t, TypeEd25519))
	path := writeFile(t, dir, DefaultFileName, orig, 0o600)
	writeFile(t, dir, DefaultFileName+PreviousSuffix, orig, 0o600)
	_, err := Rotate(Options{Path: path, Generate: true, Now: testNow})
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	assert.ElementsMatch(t, []string{DefaultFileName, DefaultFileName + PreviousSuffix}, names)
}

func assertFileKey(t *testing.T, path, fingerprint string) {
	t.Helper()
	k, err := Load(path, nil)
	require.NoError(t, err)
	assert.Equal(t, fingerprint, k.Fingerprint(), "key in %s", path)
}

// assertNoSecretsLogged fails if any log entry carries key material.
func assertNoSecretsLogged(t *testing.T, entries []*logrus.Entry, privatePEM []byte) {
	t.Helper()
	body := strings.Join(strings.Split(string(privatePEM), "\n")[1:3], "")
	for _, e := range entries {
		line, err := e.String()
		require.NoError(t, err)
		assert.NotContains(t, line, body, "log line carries private key material")
		assert.NotContains(t, line, "PRIVATE KEY")
	}
}
