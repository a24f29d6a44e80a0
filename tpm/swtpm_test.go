package tpm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/tpm"
	"github.com/mender-agent/mender-agent/tpm/tpmtest"
	"github.com/mender-agent/mender-agent/tpm/tss2"
)

var fixedNow = time.Date(2026, 11, 22, 18, 30, 5, 0, time.UTC)

func options(sw *tpmtest.SWTPM, path string) tpm.Options {
	return tpm.Options{
		Device:   sw.Device(),
		Path:     path,
		Generate: true,
		Now:      func() time.Time { return fixedNow },
	}
}

func loadOrCreate(t *testing.T, opts tpm.Options) *tpm.Key {
	t.Helper()
	k, err := tpm.LoadOrCreate(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func verify(t *testing.T, pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) {
	t.Helper()
	switch pk := pub.(type) {
	case *ecdsa.PublicKey:
		assert.True(t, ecdsa.VerifyASN1(pk, digest, sig), "ECDSA signature must verify with the standard library")
	case *rsa.PublicKey:
		assert.NoError(t, rsa.VerifyPKCS1v15(pk, h, digest, sig))
	default:
		t.Fatalf("unexpected public key %T", pub)
	}
}

func TestCreateSaveReloadSign(t *testing.T) {
	tests := []struct {
		name     string
		typ      string
		wantType string
	}{
		{name: "default is ECDSA P-256", typ: "", wantType: "ecdsa-p256"},
		{name: "RSA-2048", typ: "rsa-2048", wantType: "rsa-2048"},
		{name: "ECDSA P-384", typ: "ecdsa-p384", wantType: "ecdsa-p384"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sw := tpmtest.Start(t)
			path := filepath.Join(t.TempDir(), "mender-agent.pem")
			opts := options(sw, path)
			opts.Type = tc.typ

			k, err := tpm.LoadOrCreate(context.Background(), opts)
			require.NoError(t, err)
			assert.Equal(t, tc.wantType, k.Type())
			assert.Equal(t, "tpm", k.Backend())
			created := k.Public()
			digest := sha256.Sum256([]byte("auth request body"))
			sig, err := k.Sign(nil, digest[:], crypto.SHA256)
			require.NoError(t, err)
			verify(t, created, crypto.SHA256, digest[:], sig)
			require.NoError(t, k.Close())

			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.True(t, tpm.IsTSS2PEM(data))
			assert.Contains(t, string(data), "-----BEGIN TSS2 PRIVATE KEY-----")
			file, err := tss2.Decode(data)
			require.NoError(t, err)
			assert.Equal(t, tss2.ParentOwner, file.Parent)
			assert.True(t, file.EmptyAuth)

			sw.Restart(t) // a reboot: same seeds, no transient objects
			k2, err := tpm.LoadOrCreate(context.Background(), opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = k2.Close() })
			assert.Equal(t, created, k2.Public(), "reloading must give the same key, not a new one")
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, data, after, "loading must not rewrite the key file")

			d512 := sha512.Sum512([]byte("other"))
			sig, err = k2.Sign(nil, d512[:], crypto.SHA512)
			require.NoError(t, err)
			verify(t, created, crypto.SHA512, d512[:], sig)
		})
	}
}

func TestClearedTPM(t *testing.T) {
	newTPM := func(t *testing.T, sw *tpmtest.SWTPM) *tpmtest.SWTPM {
		sw.Stop()
		return tpmtest.Start(t) // fresh state: a replaced TPM
	}
	tpm2Clear := func(t *testing.T, sw *tpmtest.SWTPM) *tpmtest.SWTPM {
		tt, err := tpm.Open(sw.Device())
		require.NoError(t, err)
		defer tt.Close()
		_, err = tpm2.Clear{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)}}.Execute(tt)
		require.NoError(t, err, "TPM2_Clear")
		return sw
	}
	tests := []struct {
		name       string
		clear      func(t *testing.T, sw *tpmtest.SWTPM) *tpmtest.SWTPM
		regenerate bool
	}{
		{name: "TPM2_Clear, regenerate", clear: tpm2Clear, regenerate: true},
		{name: "TPM2_Clear, no regeneration", clear: tpm2Clear, regenerate: false},
		{name: "replaced TPM, regenerate", clear: newTPM, regenerate: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mender-agent.pem")
			sw := tpmtest.Start(t)
			old := loadOrCreate(t, options(sw, path))
			oldPub := old.Public()
			require.NoError(t, old.Close())
			oldData, err := os.ReadFile(path)
			require.NoError(t, err)
			cleared := tc.clear(t, sw)
			logger, hook := test.NewNullLogger()
			opts := options(cleared, path)
			opts.RegenerateOnClear = tc.regenerate
			opts.Logger = logger

			_, err = tpm.Load(context.Background(), opts)
			require.ErrorIs(t, err, tpm.ErrCleared)
			_, statErr := os.Stat(path)
			require.NoError(t, statErr, "Load must not move the file")

			k, err := tpm.LoadOrCreate(context.Background(), opts)
			aside := path + ".tpm-cleared-20261122T183005Z"
			moved, rerr := os.ReadFile(aside)
			require.NoError(t, rerr, "the unloadable key must be moved aside")
			assert.Equal(t, oldData, moved)
			var entry *logrus.Entry
			for _, e := range hook.AllEntries() {
				if e.Level == logrus.ErrorLevel {
					entry = e
				}
			}
			require.NotNil(t, entry, "moving a key aside must be logged at error level")
			assert.Equal(t, aside, entry.Data["moved_to"])
			if !tc.regenerate {
				require.ErrorIs(t, err, tpm.ErrCleared)
				assert.Contains(t, err.Error(), aside)
				assert.NoFileExists(t, path)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = k.Close() })
			assert.NotEqual(t, oldPub, k.Public())
			assert.Contains(t, entry.Message, "pending")
			digest := sha256.Sum256([]byte("x"))
			sig, err := k.Sign(nil, digest[:], crypto.SHA256)
			require.NoError(t, err)
			verify(t, k.Public(), crypto.SHA256, digest[:], sig)
		})
	}
}

// TestClearedTPMStaticKeyStaysPut: without key generation (a provisioned
// key, or a read-only command such as show-key) a key the TPM cannot load
// is reported but never moved or replaced, even with RegenerateOnClear.
func TestClearedTPMStaticKeyStaysPut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mender-agent.pem")
	sw := tpmtest.Start(t)
	old := loadOrCreate(t, options(sw, path))
	require.NoError(t, old.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sw.Stop()
	fresh := tpmtest.Start(t)
	opts := options(fresh, path)
	opts.Generate = false
	opts.RegenerateOnClear = true

	k, err := tpm.LoadOrCreate(context.Background(), opts)
	require.ErrorIs(t, err, tpm.ErrCleared)
	assert.Nil(t, k)
	assert.Contains(t, err.Error(), "left in place")
	after, err := os.ReadFile(path)
	require.NoError(t, err, "the key file must stay where it is")
	assert.Equal(t, data, after)
	matches, err := filepath.Glob(path + ".tpm-cleared-*")
	require.NoError(t, err)
	assert.Empty(t, matches, "nothing may be moved aside")
}

func TestLoadOrCreateErrors(t *testing.T) {
	sw := tpmtest.Start(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string) tpm.Options
		wantErr error
		wantMsg string
	}{
		{
			name: "ed25519 is refused",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Type = "ed25519"
				return o
			},
			wantMsg: "TPM 2.0 devices have no Ed25519",
		},
		{
			name: "unknown type",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Type = "dsa"
				return o
			},
			wantMsg: `key type "dsa"`,
		},
		{
			name: "missing file without generation",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Generate = false
				return o
			},
			wantErr: os.ErrNotExist,
			wantMsg: "key generation is off",
		},
		{
			name: "software key file is left alone",
			setup: func(t *testing.T, path string) tpm.Options {
				require.NoError(t, os.WriteFile(path, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), 0o600))
				return options(sw, path)
			},
			wantErr: tss2.ErrFormat,
			wantMsg: "file backend",
		},
		{
			name: "no device",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Device = "/dev/tpmrm-does-not-exist"
				return o
			},
			wantErr: tpm.ErrNoDevice,
			wantMsg: "/dev/tpmrm-does-not-exist",
		},
		{
			name: "not a device",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Device = filepath.Join(t.TempDir(), "regular-file")
				require.NoError(t, os.WriteFile(o.Device, nil, 0o600))
				return o
			},
			wantMsg: "not a TPM character device or socket",
		},
		{
			name: "empty socket path",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Device = "unix:"
				return o
			},
			wantMsg: "empty socket path",
		},
		{
			name: "empty key path",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, "")
				return o
			},
			wantMsg: "key path is empty",
		},
		{
			name: "no swtpm socket",
			setup: func(t *testing.T, path string) tpm.Options {
				o := options(sw, path)
				o.Device = "unix:" + filepath.Join(t.TempDir(), "none.sock")
				return o
			},
			wantErr: tpm.ErrNoDevice,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			opts := tc.setup(t, path)
			before, _ := os.ReadFile(path)
			k, err := tpm.LoadOrCreate(context.Background(), opts)
			require.Error(t, err)
			assert.Nil(t, k)
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
			}
			assert.Contains(t, err.Error(), tc.wantMsg)
			after, _ := os.ReadFile(path)
			assert.Equal(t, before, after, "a failed load must not change the key file")
		})
	}
}

// TestExistingKeyTypeWins checks that a configured type never replaces an
// existing key: the device identity stays, and the mismatch is logged.
func TestExistingKeyTypeWins(t *testing.T) {
	sw := tpmtest.Start(t)
	path := filepath.Join(t.TempDir(), "k.pem")
	k := loadOrCreate(t, options(sw, path))
	pub := k.Public()
	require.NoError(t, k.Close())

	logger, hook := test.NewNullLogger()
	opts := options(sw, path)
	opts.Type = "rsa-2048"
	opts.Logger = logger
	k = loadOrCreate(t, opts)
	assert.Equal(t, "ecdsa-p256", k.Type())
	assert.Equal(t, pub, k.Public())
	entry := hook.LastEntry()
	require.NotNil(t, entry)
	assert.Equal(t, logrus.WarnLevel, entry.Level)
	assert.Contains(t, entry.Message, "not the configured rsa-2048")
}

// TestOptionalKeyTypeAskedFirst checks that a key type TPMs may lack is
// tried with TPM2_TestParms: swtpm 0.7 (libtpms 0.9) has no RSA-4096 and
// must get a clear refusal with no file written; a TPM that has it creates
// the key.
func TestOptionalKeyTypeAskedFirst(t *testing.T) {
	sw := tpmtest.Start(t)
	path := filepath.Join(t.TempDir(), "k.pem")
	opts := options(sw, path)
	opts.Type = "rsa-4096"
	k, err := tpm.LoadOrCreate(context.Background(), opts)
	if err != nil {
		assert.ErrorContains(t, err, "this TPM does not support rsa-4096")
		assert.ErrorContains(t, err, "use ecdsa-p256 or rsa-2048")
		assert.NoFileExists(t, path)
		return
	}
	t.Cleanup(func() { _ = k.Close() })
	assert.Equal(t, "rsa-4096", k.Type())
	assert.FileExists(t, path)
}
