package signertest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const helperEnv = "SIGNERTEST_HELPER_KEY"

// TestSuiteCatchesBareStdlibKeys shows the suite can fail: the standard
// library's own keys each break one rule the server depends on (ECDSA signs
// digests of any length, Ed25519 does Ed25519ph, RSA does PSS), and Run
// must report exactly that rule. Each case runs the suite in a child
// process (this test binary) so its failure does not fail this test.
func TestSuiteCatchesBareStdlibKeys(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		wantFail string
	}{
		{name: "ecdsa accepts any digest length", key: "ecdsa", wantFail: "--- FAIL: TestHelperRun/wrong_digest_length"},
		{name: "ed25519 does ed25519ph", key: "ed25519", wantFail: "--- FAIL: TestHelperRun/ed25519_refuses_prehashed_messages"},
		{name: "rsa does pss", key: "rsa", wantFail: "--- FAIL: TestHelperRun/rsa_refuses_pss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRun$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+tt.key)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the suite must fail for a bare %s key:\n%s", tt.key, out)
			assert.Contains(t, string(out), tt.wantFail)
			assert.Contains(t, string(out), "--- PASS: TestHelperRun/signatures_verify", "valid signatures still pass")
			assert.Contains(t, string(out), "--- PASS: TestHelperRun/concurrent_sign")
		})
	}
}

// TestHelperRun runs the suite against a compliant reference signer, or,
// when started by TestSuiteCatchesBareStdlibKeys, against a bare
// standard-library key.
func TestHelperRun(t *testing.T) {
	var s crypto.Signer
	var err error
	switch os.Getenv(helperEnv) {
	case "":
		for _, k := range []crypto.Signer{mustECDSA(t), mustEd25519(t)} {
			Run(t, func(*testing.T) crypto.Signer { return compliant{k} })
		}
		return
	case "ecdsa":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	require.NoError(t, err)
	Run(t, func(*testing.T) crypto.Signer { return s })
}

func mustECDSA(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	return k
}

func mustEd25519(t *testing.T) crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return k
}

// compliant wraps a standard-library key with the rules the suite checks,
// as a positive control.
type compliant struct{ crypto.Signer }

func (c compliant) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := c.Public().(ed25519.PublicKey); ok {
		if o, isOpts := opts.(*ed25519.Options); opts.HashFunc() != 0 || (isOpts && o.Context != "") {
			return nil, errors.New("pure Ed25519 only")
		}
		return c.Signer.Sign(r, digest, opts)
	}
	if opts.HashFunc() == 0 || len(digest) != opts.HashFunc().Size() {
		return nil, errors.New("digest length does not match the hash")
	}
	return c.Signer.Sign(r, digest, opts)
}
