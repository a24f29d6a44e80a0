package artifact_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mender-agent/mender-agent/trust/artifact"
	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
)

func ExampleVerify() {
	// A signing key and an Artifact signed with it; on a device the keys
	// come from LoadKeys(ArtifactVerifyKeys...) and the Artifact from a
	// download or a file.
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := artifact.NewPublicKey(priv.Public())
	a := artifacttest.Artifact{
		Name: "release-2", Devices: []string{"raspberrypi4"}, Signer: priv,
		Payloads: []artifacttest.Payload{{Type: "rootfs-image",
			Files: []artifacttest.File{artifacttest.Bytes("rootfs.ext4", []byte("filesystem"))}}},
	}
	var file bytes.Buffer
	_ = a.Write(&file)

	var staged bytes.Buffer // stand-in for a staging partition
	rep, err := artifact.Verify(context.Background(), &file, artifact.Options{
		Keys: []artifact.PublicKey{pub},
		PayloadSink: func(name string, size int64) (io.Writer, error) {
			return &staged, nil
		},
	})
	switch {
	case errors.Is(err, artifact.ErrInvalid):
		fmt.Println("rejected:", err) // exit code artifact.ExitCode(err) == 1
		return
	case err != nil:
		fmt.Println("error:", err)
		return
	}
	// Only now may the staged bytes be committed.
	_ = rep.WriteText(os.Stdout)
	fmt.Println(staged.Len(), "bytes staged")
	// Output:
	// Artifact:            release-2
	// Format:              mender v3
	// Signature:           verified with key 1 (ECDSA P-256 SHA-256)
	// Compatible devices:  raspberrypi4
	// Payload 0:           rootfs-image (gzip)
	//   rootfs.ext4        10 bytes  sha256 cbf61858f3260072d96d9b1d2e037fc35824944b9c94d0087b1a53385eccaead
	// 10 bytes staged
}
