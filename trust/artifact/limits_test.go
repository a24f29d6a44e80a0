package artifact

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecompressionLimits checks the bounds that keep memory constant
// against hostile compressed streams, which the signature does not cover
// for payloads.
func TestDecompressionLimits(t *testing.T) {
	ec, _ := ecKeys(t)
	keys := []PublicKey{ec.pub}

	t.Run("xz dictionary", func(t *testing.T) {
		art := build(t, rootfs(ec.priv, "xz", pattern(4096)))
		art = rewrite(t, art, func(ms []artifacttest.Member) []artifacttest.Member {
			d := ms[artifacttest.Find(ms, "data/0000.tar.xz")].Data
			// Stream header (12 bytes), block header size and flags, then
			// the LZMA2 filter: id 0x21, one property byte, the dictionary.
			i := bytes.Index(d[12:], []byte{0x21, 0x01})
			require.GreaterOrEqual(t, i, 0)
			d[12+i+2] = 36 // 1 GiB
			return ms
		})
		_, err := verifyBytes(art, Options{Keys: keys})
		assert.EqualError(t, err, "data/0000.tar.xz: xz: dictionary of 1024 MiB exceeds the limit of 64 MiB")
	})
	t.Run("header bomb", func(t *testing.T) {
		hinfo := []byte(`{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"},"artifact_depends":{"device_type":["d"]}}`)
		header := writeTar(t, []tarMember{
			{hdr: tar.Header{Name: "header-info"}, data: hinfo},
			{hdr: tar.Header{Name: "scripts/ArtifactInstall_Enter_00"}, data: make([]byte, MaxHeaderUncompressed+1)},
			{hdr: tar.Header{Name: "headers/0000/type-info"}, data: []byte(`{"type":"rootfs-image"}`)},
		})
		art := rewrite(t, build(t, rootfs(ec.priv, "gzip", pattern(10))), func(ms []artifacttest.Member) []artifacttest.Member {
			ms[artifacttest.Find(ms, "header.tar.gz")].Data = gz(t, header)
			return reseal(t, ms, ec.priv)
		})
		_, err := verifyBytes(art, Options{Keys: keys})
		assert.EqualError(t, err, "header.tar.gz: decompresses to more than 16777216 bytes")
	})
	t.Run("header member size", func(t *testing.T) {
		art := rewrite(t, build(t, rootfs(ec.priv, "gzip", pattern(10))), func(ms []artifacttest.Member) []artifacttest.Member {
			ms[artifacttest.Find(ms, "header.tar.gz")].Data = make([]byte, MaxHeaderSize+1)
			return reseal(t, ms, ec.priv)
		})
		_, err := verifyBytes(art, Options{Keys: keys})
		assert.EqualError(t, err, "header.tar.gz: 4194305 bytes exceeds the limit of 4194304")
	})
}

// TestShrinkXzDict checks that the header is decoded with a dictionary no
// larger than its decompressed bound, and that the rewritten block header
// still passes the decoder's CRC check.
func TestShrinkXzDict(t *testing.T) {
	var raw bytes.Buffer
	w, err := artifacttest.Compress(&raw, "xz", 0)
	require.NoError(t, err)
	content := pattern(300 << 10)
	_, err = w.Write(content)
	require.NoError(t, err)
	require.NoError(t, w.Close())

	off, _, ok := xzDictOffset(raw.Bytes())
	require.True(t, ok)
	before, err := xzDictSize(raw.Bytes()[off])
	require.NoError(t, err)
	assert.Equal(t, uint64(8<<20), before)

	small := shrinkXzDict(raw.Bytes(), 1<<20)
	after, err := xzDictSize(small[off])
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<20), after)
	r, err := artifacttest.Decompress(bytes.NewReader(small), ".xz")
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, content, got)
	assert.Equal(t, raw.Bytes(), shrinkXzDict(raw.Bytes(), 64<<20), "a small enough dictionary is left alone")
}
