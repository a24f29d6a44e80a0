package tpm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/keystore"
	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/mender-agent/mender-agent/tpm"
	"github.com/mender-agent/mender-agent/tpm/tpmtest"
	"github.com/mender-agent/mender-agent/tpm/tss2"
)

// tool runs a system tool against sw and returns its standard output.
func tool(t *testing.T, sw *tpmtest.SWTPM, dir string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	bin := testenv.LookPath(t, name)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TPM2OPENSSL_TCTI="+sw.TCTI(),
		"TPM2TOOLS_TCTI="+sw.TCTI(),
	)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s %s: %s", name, strings.Join(args, " "), stderr.String())
	return stdout.Bytes()
}

// requireTPM2Provider skips (or fails under make test) when OpenSSL has no
// tpm2 provider module. (Loading the provider needs a reachable TPM, so
// this looks for the module file instead.)
func requireTPM2Provider(t *testing.T) {
	t.Helper()
	bin := testenv.LookPath(t, "openssl")
	out, err := exec.Command(bin, "version", "-m").Output()
	require.NoError(t, err)
	_, dir, ok := strings.Cut(strings.TrimSpace(string(out)), "MODULESDIR: ")
	if ok {
		if _, err := os.Stat(filepath.Join(strings.Trim(dir, `"`), "tpm2.so")); err == nil {
			return
		}
	}
	testenv.Unavailable(t, "OpenSSL tpm2 provider (tpm2.so) not installed; run scripts/install-deps.sh tpm")
}

func spkiPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	p, err := keystore.PublicKeyPEM(pub)
	require.NoError(t, err)
	return p
}

// TestOpenSSLUsesOurKey checks that a key file written by this package is
// usable by tpm2-openssl as is: same public key, and signatures that verify
// with the public key we report.
func TestOpenSSLUsesOurKey(t *testing.T) {
	requireTPM2Provider(t)
	tests := []struct {
		name string
		typ  string
	}{
		{name: "ECDSA P-256", typ: ""},
		{name: "RSA-2048", typ: "rsa-2048"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sw := tpmtest.Start(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "key.pem")
			opts := options(sw, path)
			opts.Type = tc.typ
			k, err := tpm.LoadOrCreate(context.Background(), opts)
			require.NoError(t, err)
			pub := k.Public()
			// swtpm has no resource manager and serves one client at a
			// time: give the TPM back before the tool runs.
			require.NoError(t, k.Close())

			gotPub := tool(t, sw, dir, nil, "openssl", "pkey", "-provider", "tpm2", "-provider", "default", "-in", path, "-pubout")
			assert.Equal(t, string(spkiPEM(t, pub)), string(gotPub))

			msg := []byte("auth request body signed by openssl")
			digest := sha256.Sum256(msg)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "digest"), digest[:], 0o600))
			sig := tool(t, sw, dir, nil, "openssl", "pkeyutl", "-sign",
				"-provider", "tpm2", "-provider", "default", "-propquery", "?provider=tpm2",
				"-inkey", path, "-in", "digest", "-pkeyopt", "digest:sha256")
			verify(t, pub, crypto.SHA256, digest[:], sig)

			sig = tool(t, sw, dir, msg, "openssl", "dgst", "-sha256",
				"-provider", "tpm2", "-provider", "default", "-propquery", "?provider=tpm2",
				"-sign", path)
			verify(t, pub, crypto.SHA256, digest[:], sig)
		})
	}
}

// TestTPM2ToolsUseOurKey loads our key file with tpm2-tools (no -C: the
// tools derive the same owner SRK) and signs with it.
func TestTPM2ToolsUseOurKey(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	k, err := tpm.LoadOrCreate(context.Background(), options(sw, path))
	require.NoError(t, err)
	pub := k.Public()
	require.NoError(t, k.Close())

	msg := []byte("signed by tpm2_sign")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "msg"), msg, 0o600))
	tool(t, sw, dir, nil, "tpm2_load", "-r", path, "-c", "key.ctx")
	tool(t, sw, dir, nil, "tpm2_sign", "-c", "key.ctx", "-g", "sha256", "-s", "ecdsa", "-f", "plain", "-o", "sig", "msg")
	tool(t, sw, dir, nil, "tpm2_flushcontext", "-t")
	sig, err := os.ReadFile(filepath.Join(dir, "sig"))
	require.NoError(t, err)
	digest := sha256.Sum256(msg)
	verify(t, pub, crypto.SHA256, digest[:], sig)
}

// persistentSRK is where the persistent-parent cases keep their SRK.
const persistentSRK = "0x81000101"

// TestPersistentParentGone checks that a key file naming a persistent
// parent that is no longer in the TPM (evicted, or erased by TPM2_Clear)
// reports ErrCleared.
func TestPersistentParentGone(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	tool(t, sw, dir, nil, "tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:aes128cfb",
		"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", "srk.ctx")
	tool(t, sw, dir, nil, "tpm2_evictcontrol", "-C", "o", "-c", "srk.ctx", persistentSRK)
	tool(t, sw, dir, nil, "tpm2_flushcontext", "-t")
	tool(t, sw, dir, nil, "tpm2_create", "-C", persistentSRK, "-G", "ecc256", "-u", "k.pub", "-r", "k.priv")
	tool(t, sw, dir, nil, "tpm2_encodeobject", "-C", persistentSRK, "-u", "k.pub", "-r", "k.priv", "-o", "k.pem")
	tool(t, sw, dir, nil, "tpm2_evictcontrol", "-C", "o", "-c", persistentSRK)

	opts := options(sw, filepath.Join(dir, "k.pem"))
	opts.Generate = false
	_, err := tpm.Load(context.Background(), opts)
	require.ErrorIs(t, err, tpm.ErrCleared)
	assert.Contains(t, err.Error(), "persistent parent 0x81000101 is not in the TPM")
}

// TestLoadForeignKeys loads key files made by tpm2-openssl and by
// tpm2-tools and signs with them.
func TestLoadForeignKeys(t *testing.T) {
	tests := []struct {
		name       string
		make       func(t *testing.T, sw *tpmtest.SWTPM, dir string) string
		wantParent uint32
		wantType   string
	}{
		{
			name: "openssl genpkey EC P-256",
			make: func(t *testing.T, sw *tpmtest.SWTPM, dir string) string {
				requireTPM2Provider(t)
				tool(t, sw, dir, nil, "openssl", "genpkey", "-provider", "tpm2", "-provider", "default",
					"-algorithm", "EC", "-pkeyopt", "group:P-256", "-out", "k.pem")
				return filepath.Join(dir, "k.pem")
			},
			wantType: "ecdsa-p256",
		},
		{
			name: "openssl genpkey RSA-2048",
			make: func(t *testing.T, sw *tpmtest.SWTPM, dir string) string {
				requireTPM2Provider(t)
				tool(t, sw, dir, nil, "openssl", "genpkey", "-provider", "tpm2", "-provider", "default",
					"-algorithm", "RSA", "-pkeyopt", "bits:2048", "-out", "k.pem")
				return filepath.Join(dir, "k.pem")
			},
			wantType: "rsa-2048",
		},
		{
			name: "tpm2_encodeobject",
			make: func(t *testing.T, sw *tpmtest.SWTPM, dir string) string {
				tool(t, sw, dir, nil, "tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:aes128cfb",
					"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", "srk.ctx")
				tool(t, sw, dir, nil, "tpm2_create", "-C", "srk.ctx", "-G", "ecc256", "-u", "k.pub", "-r", "k.priv")
				tool(t, sw, dir, nil, "tpm2_encodeobject", "-C", "srk.ctx", "-u", "k.pub", "-r", "k.priv", "-o", "k.pem")
				tool(t, sw, dir, nil, "tpm2_flushcontext", "-t")
				return filepath.Join(dir, "k.pem")
			},
			wantType: "ecdsa-p256",
		},
		{
			name: "tpm2_encodeobject under a persistent SRK",
			make: func(t *testing.T, sw *tpmtest.SWTPM, dir string) string {
				tool(t, sw, dir, nil, "tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:aes128cfb",
					"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", "srk.ctx")
				tool(t, sw, dir, nil, "tpm2_evictcontrol", "-C", "o", "-c", "srk.ctx", persistentSRK)
				tool(t, sw, dir, nil, "tpm2_flushcontext", "-t")
				tool(t, sw, dir, nil, "tpm2_create", "-C", persistentSRK, "-G", "ecc256", "-u", "k.pub", "-r", "k.priv")
				tool(t, sw, dir, nil, "tpm2_encodeobject", "-C", persistentSRK, "-u", "k.pub", "-r", "k.priv", "-o", "k.pem")
				return filepath.Join(dir, "k.pem")
			},
			wantParent: 0x81000101,
			wantType:   "ecdsa-p256",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantParent == 0 {
				tc.wantParent = tss2.ParentOwner
			}
			sw := tpmtest.Start(t)
			dir := t.TempDir()
			path := tc.make(t, sw, dir)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.True(t, tpm.IsTSS2PEM(data), "tool output must be a TSS2 key file:\n%s", data)
			file, err := tss2.Decode(data)
			require.NoError(t, err)
			assert.Equal(t, tc.wantParent, file.Parent)

			opts := options(sw, path)
			opts.Generate = false
			k := loadOrCreate(t, opts)
			assert.Equal(t, tc.wantType, k.Type())
			digest := sha256.Sum256([]byte("signed by mender-agent with a foreign key"))
			sig, err := k.Sign(nil, digest[:], crypto.SHA256)
			require.NoError(t, err)
			verify(t, k.Public(), crypto.SHA256, digest[:], sig)
			require.NoError(t, k.Close())

			if strings.HasPrefix(tc.name, "openssl") {
				// The public key openssl reports for its own file is the
				// one we sign for.
				gotPub := tool(t, sw, dir, nil, "openssl", "pkey", "-provider", "tpm2", "-provider", "default", "-in", path, "-pubout")
				assert.Equal(t, string(spkiPEM(t, k.Public())), string(gotPub))
			}
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, data, after, "loading a foreign key must not rewrite it")
		})
	}
}
