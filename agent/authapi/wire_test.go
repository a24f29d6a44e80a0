package authapi_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent/authapi"
	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestWireFormatVerifiesWithOpenSSL checks the bytes that went over the
// wire with OpenSSL, an implementation that shares no code with our signer
// or with the test server's verifier.
func TestWireFormatVerifiesWithOpenSSL(t *testing.T) {
	openssl := testenv.LookPath(t, "openssl")
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			srv := startServer(t, authserver.Options{AutoAccept: true})
			key := kt.key(t)
			c := newClient(t, key, []string{srv.URL()}, func(c *authapi.Config) { c.TenantToken = "tenant-1" })
			_, err := c.Authenticate(t.Context())
			require.NoError(t, err)
			reqs := authRequests(srv)
			require.Len(t, reqs, 1)
			sig, err := base64.StdEncoding.DecodeString(reqs[0].Signature)
			require.NoError(t, err)

			dir := t.TempDir()
			body := filepath.Join(dir, "body")
			sigFile := filepath.Join(dir, "sig")
			pub := filepath.Join(dir, "pub.pem")
			require.NoError(t, os.WriteFile(body, reqs[0].Body, 0o600))
			require.NoError(t, os.WriteFile(sigFile, sig, 0o600))
			require.NoError(t, os.WriteFile(pub, []byte(c.PublicKeyPEM()), 0o600))

			verify := func(bodyPath string) (string, error) {
				var cmd *exec.Cmd
				if _, ok := key.Public().(ed25519.PublicKey); ok {
					cmd = exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", bodyPath, "-sigfile", sigFile)
				} else {
					cmd = exec.Command(openssl, "dgst", "-sha256", "-verify", pub, "-signature", sigFile, bodyPath)
				}
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := verify(body)
			require.NoError(t, err, "openssl: %s", out)
			assert.Regexp(t, "Verified OK|Signature Verified Successfully", out)

			// One flipped byte must fail, or the check proves nothing.
			tampered := append([]byte(nil), reqs[0].Body...)
			tampered[len(tampered)-2] ^= 1
			bad := filepath.Join(dir, "tampered")
			require.NoError(t, os.WriteFile(bad, tampered, 0o600))
			out, err = verify(bad)
			assert.Error(t, err, "openssl accepted a tampered body: %s", out)
		})
	}
}
