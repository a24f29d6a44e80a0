package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerifyGenerated(t *testing.T) {
	ec, _, rk := goKeys(t)
	content := pattern(300 << 10)
	for _, comp := range []string{"none", "gzip", "xz", "zstd"} {
		for _, k := range []struct {
			name string
			key  testKeyPair
			opts artifacttest.SignOptions
		}{
			{"ecdsa-raw", ec, artifacttest.SignOptions{}},
			{"ecdsa-der", ec, artifacttest.SignOptions{DER: true}},
			{"rsa2048", rk, artifacttest.SignOptions{}},
		} {
			t.Run(comp+"/"+k.name, func(t *testing.T) {
				a := rootfs(k.key.priv, comp, content)
				a.Sign = k.opts
				var got bytes.Buffer
				rep, err := verifyBytes(build(t, a), Options{
					Keys: []PublicKey{k.key.pub},
					PayloadSink: func(name string, size int64) (io.Writer, error) {
						assert.Equal(t, "data/0000/rootfs.ext4", name)
						assert.Equal(t, int64(len(content)), size)
						return &got, nil
					},
				})
				require.NoError(t, err)
				assert.Equal(t, content, got.Bytes())
				assert.Equal(t, "release-1", rep.Name)
				assert.Equal(t, []string{"rootfs-image"}, rep.Types)
				assert.Equal(t, []string{"qemux86-64", "raspberrypi4"}, rep.CompatibleDevices)
				assert.True(t, rep.Signed)
				assert.True(t, rep.SignatureVerified)
				assert.Equal(t, 0, rep.KeyIndex)
				want := artifacttest.Suffix(comp)
				assert.Equal(t, map[string]string{"": "none", ".gz": "gzip", ".xz": "xz", ".zst": "zstd"}[want], rep.HeaderCompression)
				require.Len(t, rep.Payloads, 1)
				sum := sha256.Sum256(content)
				assert.Equal(t, []File{{Name: "rootfs.ext4", Size: int64(len(content)), SHA256: fmt.Sprintf("%x", sum)}}, rep.Payloads[0].Files)
			})
		}
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	ec, ec2, rk := goKeys(t)
	art := build(t, rootfs(ec2.priv, "gzip", pattern(1000)))
	rep, err := verifyBytes(art, Options{Keys: []PublicKey{rk.pub, ec.pub, ec2.pub}})
	require.NoError(t, err)
	assert.Equal(t, 2, rep.KeyIndex)
	assert.Equal(t, "ECDSA P-256 SHA-256", rep.KeyAlgorithm)

	_, err = verifyBytes(art, Options{Keys: []PublicKey{rk.pub, ec.pub}})
	require.ErrorIs(t, err, ErrBadSignature)
	assert.EqualError(t, err, "manifest.sig: signature does not verify with any of the 2 keys")
}

func TestVerifyModes(t *testing.T) {
	ec, _, _ := goKeys(t)
	signed := build(t, rootfs(ec.priv, "gzip", pattern(1000)))
	unsigned := build(t, rootfs(nil, "gzip", pattern(1000)))

	_, err := verifyBytes(signed, Options{})
	require.ErrorIs(t, err, ErrNoKeys)
	assert.NotErrorIs(t, err, ErrInvalid)
	assert.Equal(t, ExitUsage, ExitCode(err))

	rep, err := verifyBytes(signed, Options{IntegrityOnly: true})
	require.NoError(t, err)
	assert.True(t, rep.Signed)
	assert.False(t, rep.SignatureVerified)
	assert.Equal(t, -1, rep.KeyIndex)

	rep, err = verifyBytes(unsigned, Options{IntegrityOnly: true})
	require.NoError(t, err)
	assert.False(t, rep.Signed)

	_, err = verifyBytes(unsigned, Options{Keys: []PublicKey{ec.pub}})
	require.ErrorIs(t, err, ErrUnsigned)
	assert.Equal(t, ExitInvalid, ExitCode(err))
	assert.Equal(t, ExitValid, ExitCode(nil))
}

// tarMember is a raw outer or inner tar member for hand-built cases.
type tarMember struct {
	hdr  tar.Header
	data []byte
}

func writeTar(t testing.TB, ms []tarMember) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		h := m.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.data))
		}
		h.Mode = 0o644
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write(m.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return b.Bytes()
}

// reseal recomputes the manifest from the members' real contents (header
// hash, payload file hashes) and re-signs it, so a case tests the rule it
// is about rather than a hash mismatch.
func reseal(t testing.TB, ms []artifacttest.Member, key crypto.Signer) []artifacttest.Member {
	t.Helper()
	var mf strings.Builder
	var tail []string
	for _, m := range ms {
		switch {
		case strings.HasPrefix(m.Name, "data/"):
			sfx := m.Name[strings.Index(m.Name, ".tar")+4:]
			r, err := artifacttest.Decompress(bytes.NewReader(m.Data), sfx)
			require.NoError(t, err)
			tr := tar.NewReader(r)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				c, err := io.ReadAll(tr)
				require.NoError(t, err)
				fmt.Fprintf(&mf, "%x  %s/%s\n", sha256.Sum256(c), strings.TrimSuffix(m.Name, ".tar"+sfx), h.Name)
			}
		case strings.HasPrefix(m.Name, "header.tar"), m.Name == "version":
			tail = append(tail, fmt.Sprintf("%x  %s\n", sha256.Sum256(m.Data), m.Name))
		}
	}
	for i := len(tail) - 1; i >= 0; i-- {
		mf.WriteString(tail[i])
	}
	ms[artifacttest.Find(ms, "manifest")].Data = []byte(mf.String())
	out, err := artifacttest.Resign(ms, key, artifacttest.SignOptions{})
	require.NoError(t, err)
	return out
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := artifacttest.Compress(&out, "gzip", 0)
	require.NoError(t, err)
	_, err = w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return out.Bytes()
}

func TestVerifyRejects(t *testing.T) {
	ec, ec2, _ := goKeys(t)
	content := pattern(64 << 10)
	base := build(t, rootfs(ec.priv, "gzip", content))
	headerOf := func(ms []artifacttest.Member) *artifacttest.Member {
		return &ms[artifacttest.Find(ms, "header.tar.gz")]
	}
	// setHeader replaces the header tar (uncompressed entries).
	setHeader := func(entries []tarMember) func([]artifacttest.Member) []artifacttest.Member {
		return func(ms []artifacttest.Member) []artifacttest.Member {
			headerOf(ms).Data = gz(t, writeTar(t, entries))
			return reseal(t, ms, ec.priv)
		}
	}
	hinfo := []byte(`{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"},"artifact_depends":{"device_type":["d"]}}`)
	tinfo := []byte(`{"type":"rootfs-image"}`)
	setData := func(entries []tarMember) func([]artifacttest.Member) []artifacttest.Member {
		return func(ms []artifacttest.Member) []artifacttest.Member {
			ms[artifacttest.Find(ms, "data/0000.tar.gz")].Data = gz(t, writeTar(t, entries))
			return reseal(t, ms, ec.priv)
		}
	}
	tests := []struct {
		name    string
		art     []byte
		want    string
		wantErr error
	}{
		{name: "manifest byte", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data[3] ^= 1
			return ms
		}), want: "manifest.sig: signature does not verify", wantErr: ErrBadSignature},
		{name: "signature byte", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			if ms[2].Data[10] == 'A' {
				ms[2].Data[10] = 'B'
			} else {
				ms[2].Data[10] = 'A'
			}
			return ms
		}), want: "manifest.sig: signature does not verify", wantErr: ErrBadSignature},
		{name: "signature not base64", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[2].Data[10] = '*'
			return ms
		}), want: "manifest.sig: not valid base64: illegal base64 data at input byte 10", wantErr: ErrBadSignature},
		{name: "empty signature", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[2].Data = nil
			return ms
		}), want: "manifest.sig: empty signature", wantErr: ErrBadSignature},
		{name: "other key", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			out, _ := artifacttest.Resign(ms, ec2.priv, artifacttest.SignOptions{})
			return out
		}), want: "manifest.sig: signature does not verify", wantErr: ErrBadSignature},
		{name: "header byte", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			headerOf(ms).Data[20] ^= 1
			return ms
		}), want: "header.tar.gz: sha256 mismatch"},
		{name: "version byte", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[0].Data = []byte(`{"format":"mender", "version":3}`)
			return ms
		}), want: "version: sha256 mismatch"},
		{name: "payload content", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			c := bytes.Clone(content)
			c[1000] ^= 1
			ms[artifacttest.Find(ms, "data/0000.tar.gz")].Data = gz(t, writeTar(t, []tarMember{{hdr: tar.Header{Name: "rootfs.ext4"}, data: c}}))
			return ms
		}), want: "data/0000/rootfs.ext4: sha256 mismatch"},
		{name: "compressed payload byte", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			d := ms[artifacttest.Find(ms, "data/0000.tar.gz")].Data
			d[len(d)-6] ^= 1 // inside the gzip CRC trailer
			return ms
		}), want: "data/0000.tar.gz: gzip: invalid checksum"},
		{name: "manifest-augment", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			aug := artifacttest.Member{Name: "manifest-augment", Data: []byte("")}
			return append(ms[:3], append([]artifacttest.Member{aug}, ms[3:]...)...)
		}), want: "manifest-augment: augmented artifacts are refused: augment sections are not covered by the signature"},
		{name: "header-augment", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			aug := artifacttest.Member{Name: "header-augment.tar.gz", Data: headerOf(ms).Data}
			return append(ms[:4], append([]artifacttest.Member{aug}, ms[4:]...)...)
		}), want: "header-augment.tar.gz: augmented artifacts are refused: augment sections are not covered by the signature"},
		{name: "extra member at end", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			return append(ms, artifacttest.Member{Name: "extra", Data: []byte("x")})
		}), want: "extra: unexpected member; want data/0001.tar[.gz|.xz|.zst] or the end of the archive"},
		{name: "extra data member", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			return append(ms, artifacttest.Member{Name: "data/0001.tar.gz", Data: ms[len(ms)-1].Data})
		}), want: "data/0001.tar.gz: extra payload member: header-info has 1 payload(s)"},
		{name: "data member out of order", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[len(ms)-1].Name = "data/0001.tar.gz"
			return ms
		}), want: "data/0001.tar.gz: unexpected member; want data/0000.tar[.gz|.xz|.zst] or the end of the archive"},
		{name: "data member missing", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			return ms[:len(ms)-1]
		}), want: "data/0000/rootfs.ext4: listed in the manifest but not in the artifact"},
		{name: "unknown compression suffix", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[len(ms)-1].Name = "data/0000.tar.bz2"
			return ms
		}), want: "data/0000.tar.bz2: unexpected member; want data/0000.tar[.gz|.xz|.zst] or the end of the archive"},
		{name: "version not first", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[0], ms[1] = ms[1], ms[0]
			return ms
		}), want: "manifest: first member must be \"version\""},
		{name: "versionX", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[0].Name = "versionX"
			return ms
		}), want: "versionX: first member must be \"version\""},
		{name: "format version 2", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[0].Data = []byte(`{"format":"mender","version":2}`)
			return reseal(t, ms, ec.priv)
		}), want: "version: format version 2 is not supported; only version 3 is (mender-artifact write -v 3)"},
		{name: "version unknown field", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[0].Data = []byte(`{"format":"mender","version":3,"x":1}`)
			return reseal(t, ms, ec.priv)
		}), want: "version: json: json: unknown field \"x\""},
		{name: "duplicate json key", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[0].Data = []byte(`{"format":"mender","version":3,"version":3}`)
			return reseal(t, ms, ec.priv)
		}), want: "version: json: duplicate key \"version\""},
		{name: "header then garbage member", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[3].Name = "header.tar.bz2"
			return ms
		}), want: "header.tar.bz2: unexpected member; want header.tar[.gz|.xz|.zst]"},
		{name: "header renamed to other suffix", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[3].Name = "header.tar.xz"
			return ms
		}), want: "header.tar.xz: not listed in the manifest (it lists \"header.tar.gz\")"},
		{name: "symlink in payload", art: rewrite(t, base, setData([]tarMember{{hdr: tar.Header{Name: "rootfs.ext4", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}}})),
			want: "data/0000.tar.gz: entry \"rootfs.ext4\" is not a regular file (tar type '2')"},
		{name: "dot-dot payload name", art: rewrite(t, base, setData([]tarMember{{hdr: tar.Header{Name: "../rootfs.ext4"}, data: content}})),
			want: "manifest: line 1: path \"data/0000/../rootfs.ext4\": file name \"../rootfs.ext4\" has a character outside [A-Za-z0-9_.,-]"},
		{name: "duplicate payload entry", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[artifacttest.Find(ms, "data/0000.tar.gz")].Data = gz(t, writeTar(t, []tarMember{{hdr: tar.Header{Name: "rootfs.ext4"}, data: content}, {hdr: tar.Header{Name: "rootfs.ext4"}, data: content}}))
			return ms
		}), want: "data/0000/rootfs.ext4: appears twice in the payload"},
		{name: "unlisted payload entry", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[artifacttest.Find(ms, "data/0000.tar.gz")].Data = gz(t, writeTar(t, []tarMember{{hdr: tar.Header{Name: "rootfs.ext4"}, data: content}, {hdr: tar.Header{Name: "evil.sh"}, data: []byte("x")}}))
			return ms
		}), want: "data/0000/evil.sh: not listed in the manifest"},
		{name: "payload trailing garbage inside gzip", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			raw := writeTar(t, []tarMember{{hdr: tar.Header{Name: "rootfs.ext4"}, data: content}})
			ms[artifacttest.Find(ms, "data/0000.tar.gz")].Data = gz(t, append(raw, "unsigned bytes"...))
			return ms
		}), want: "data/0000.tar.gz: non-zero data after the tar end-of-archive marker (byte 67072)"},
		{name: "payload data after gzip stream", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			i := artifacttest.Find(ms, "data/0000.tar.gz")
			ms[i].Data = append(ms[i].Data, "tail"...)
			return ms
		}), want: "data/0000.tar.gz: gzip: compressed stream truncated or followed by other data: unexpected EOF"},
		{name: "header extra entry", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: hinfo}, {hdr: tar.Header{Name: "headers/0000/type-info"}, data: tinfo}, {hdr: tar.Header{Name: "headers/0000/evil"}, data: []byte("x")}})),
			want: "header.tar.gz: unexpected entry \"headers/0000/evil\""},
		{name: "header path traversal", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: hinfo}, {hdr: tar.Header{Name: "headers/0000/../../tmp/type-info"}, data: tinfo}})),
			want: "header.tar.gz: unexpected entry \"headers/0000/../../tmp/type-info\""},
		{name: "header-info not first", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "headers/0000/type-info"}, data: tinfo}, {hdr: tar.Header{Name: "header-info"}, data: hinfo}})),
			want: "header.tar.gz: first entry is \"headers/0000/type-info\", want header-info"},
		{name: "bad script name", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: hinfo}, {hdr: tar.Header{Name: "scripts/../../etc/rc.local"}, data: []byte("x")}, {hdr: tar.Header{Name: "headers/0000/type-info"}, data: tinfo}})),
			want: "header.tar.gz: script name \"../../etc/rc.local\" is not <State>_<Enter|Leave|Error>_NN[_description]"},
		{name: "type mismatch", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: hinfo}, {hdr: tar.Header{Name: "headers/0000/type-info"}, data: []byte(`{"type":"other"}`)}})),
			want: "header.tar.gz: headers/0000/type-info: type \"other\" does not match header-info type \"rootfs-image\""},
		{name: "missing type-info", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: hinfo}})),
			want: "header.tar.gz: header-info lists 1 payloads but there are 0 headers/NNNN/type-info"},
		{name: "nested meta-data", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: hinfo}, {hdr: tar.Header{Name: "headers/0000/type-info"}, data: tinfo}, {hdr: tar.Header{Name: "headers/0000/meta-data"}, data: []byte(`{"a":{"b":1}}`)}})),
			want: "header.tar.gz: headers/0000/meta-data: key \"a\": value is a object; only strings, numbers and lists of those are allowed"},
		{name: "header-info unknown field", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: []byte(`{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"},"artifact_depends":{"device_type":["d"]},"x":1}`)}, {hdr: tar.Header{Name: "headers/0000/type-info"}, data: tinfo}})),
			want: "header.tar.gz: header-info: json: json: unknown field \"x\""},
		{name: "no device type", art: rewrite(t, base, setHeader([]tarMember{{hdr: tar.Header{Name: "header-info"}, data: []byte(`{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"},"artifact_depends":{}}`)}, {hdr: tar.Header{Name: "headers/0000/type-info"}, data: tinfo}})),
			want: "header.tar.gz: header-info: artifact_depends.device_type is missing"},
		{name: "manifest uppercase hex", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data = bytes.ToUpper(ms[1].Data[:64])
			ms[1].Data = append(ms[1].Data, "  data/0000/rootfs.ext4\n"...)
			out, _ := artifacttest.Resign(ms, ec.priv, artifacttest.SignOptions{})
			return out
		}), want: "manifest: line 1: checksum is not 64 lowercase hex digits"},
		{name: "manifest without final newline", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data = ms[1].Data[:len(ms[1].Data)-1]
			out, _ := artifacttest.Resign(ms, ec.priv, artifacttest.SignOptions{})
			return out
		}), want: "manifest: last line does not end with a newline"},
		{name: "manifest duplicate", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data = append(ms[1].Data, ms[1].Data[bytes.LastIndexByte(ms[1].Data[:len(ms[1].Data)-1], '\n')+1:]...)
			out, _ := artifacttest.Resign(ms, ec.priv, artifacttest.SignOptions{})
			return out
		}), want: "manifest: line 4: duplicate path \"version\""},
		{name: "manifest lists augment file", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data = append(ms[1].Data, strings.Repeat("0", 64)+"  header-augment.tar.gz\n"...)
			out, _ := artifacttest.Resign(ms, ec.priv, artifacttest.SignOptions{})
			return out
		}), want: "manifest: line 4: path \"header-augment.tar.gz\" is not version, header.tar[.gz|.xz|.zst] or data/NNNN/<file>"},
		{name: "manifest entry never used", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data = append([]byte(strings.Repeat("0", 64)+"  data/0000/other.bin\n"), ms[1].Data...)
			out, _ := artifacttest.Resign(ms, ec.priv, artifacttest.SignOptions{})
			return out
		}), want: "data/0000/other.bin: listed in the manifest but not in the artifact"},
		{name: "manifest names missing payload", art: rewrite(t, base, func(ms []artifacttest.Member) []artifacttest.Member {
			ms[1].Data = append([]byte(strings.Repeat("0", 64)+"  data/0001/other.bin\n"), ms[1].Data...)
			out, _ := artifacttest.Resign(ms, ec.priv, artifacttest.SignOptions{})
			return out
		}), want: "data/0001/other.bin: manifest lists a file of payload 1 but header-info has 1 payload(s)"},
		{name: "outer trailing garbage", art: append(bytes.Clone(base), "appended"...),
			want: "non-zero data after the tar end-of-archive marker (byte " + fmt.Sprint(len(base)) + ")"},
		{name: "outer missing end marker", art: base[:len(base)-1024], want: "missing tar end-of-archive marker"},
		{name: "outer half end marker", art: base[:len(base)-512], want: "missing tar end-of-archive marker"},
		{name: "outer symlink member", art: writeTar(t, []tarMember{{hdr: tar.Header{Name: "version", Typeflag: tar.TypeSymlink, Linkname: "/x"}}}),
			want: "version: entry \"version\" is not a regular file (tar type '2')"},
		{name: "empty input", art: nil, want: "truncated: the input ends after 0 bytes, before the first member"},
		{name: "outer too large version", art: writeTar(t, []tarMember{{hdr: tar.Header{Name: "version"}, data: make([]byte, 5000)}}),
			want: "version: 5000 bytes exceeds the limit of 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := verifyBytes(tt.art, Options{Keys: []PublicKey{ec.pub}})
			require.Error(t, err)
			assert.Nil(t, rep)
			assert.ErrorIs(t, err, ErrInvalid)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestVerifyTruncated(t *testing.T) {
	ec, _, _ := goKeys(t)
	base := build(t, rootfs(ec.priv, "gzip", pattern(200<<10)))
	for _, n := range []int{1, 100, 511, 512, 600, 1024, 1600, 2048, 3000, len(base) / 2, len(base) - 2048, len(base) - 1030} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, err := verifyBytes(base[:n], Options{Keys: []PublicKey{ec.pub}})
			require.ErrorIs(t, err, ErrInvalid)
			assert.Regexp(t, `^(([a-z0-9./-]+: )?truncated: the input ends after \d+ bytes(, before the first member)?|truncated after member "[a-z0-9./-]+": the input ends after \d+ bytes|missing tar end-of-archive marker)$`, err.Error())
		})
	}
}

func TestVerifyPolicies(t *testing.T) {
	ec, _, _ := goKeys(t)
	keys := []PublicKey{ec.pub}
	base := build(t, rootfs(ec.priv, "gzip", pattern(5000)))

	t.Run("zero padding after end marker", func(t *testing.T) {
		_, err := verifyBytes(append(bytes.Clone(base), make([]byte, 10240)...), Options{Keys: keys})
		assert.NoError(t, err)
		_, err = verifyBytes(append(bytes.Clone(base), make([]byte, MaxTrailingZeros+512)...), Options{Keys: keys})
		assert.EqualError(t, err, fmt.Sprintf("more than %d bytes of padding after the tar end-of-archive marker", MaxTrailingZeros))
	})
	t.Run("empty type for rootfs-image only", func(t *testing.T) {
		empty := ""
		a := artifacttest.Artifact{Name: "m", Devices: []string{"d"}, Signer: ec.priv, Payloads: []artifacttest.Payload{{
			Type: "my-module", TypeInfoType: &empty, Files: []artifacttest.File{artifacttest.Bytes("f", []byte("x"))},
		}}}
		_, err := verifyBytes(build(t, a), Options{Keys: keys})
		assert.EqualError(t, err, `header.tar.gz: headers/0000/type-info: type "" does not match header-info type "my-module"`)
	})
	t.Run("bootstrap", func(t *testing.T) {
		a := artifacttest.Artifact{Name: "boot", Devices: []string{"d"}, Signer: ec.priv, Payloads: []artifacttest.Payload{{}}}
		rep, err := verifyBytes(build(t, a), Options{Keys: keys})
		require.NoError(t, err)
		assert.Equal(t, []string{""}, rep.Types)
		assert.Empty(t, rep.Payloads[0].Files)
		// A bootstrap payload carries no files, even signed ones.
		withFile := a
		withFile.Payloads = []artifacttest.Payload{{Files: []artifacttest.File{artifacttest.Bytes("x", []byte("1"))}}}
		_, err = verifyBytes(build(t, withFile), Options{Keys: keys})
		assert.EqualError(t, err, "data/0000/x: manifest lists a file of payload 0, which is empty (type null)")
		// The data member may be absent.
		_, err = verifyBytes(rewrite(t, build(t, a), func(ms []artifacttest.Member) []artifacttest.Member { return ms[:len(ms)-1] }), Options{Keys: keys})
		assert.NoError(t, err)
	})
	t.Run("several payloads, files and scripts", func(t *testing.T) {
		a := artifacttest.Artifact{Name: "multi", Devices: []string{"d"}, Signer: ec.priv, Compression: "zstd",
			Scripts: map[string][]byte{"ArtifactInstall_Enter_00_prep": []byte("#!/bin/sh\n")},
			Payloads: []artifacttest.Payload{
				{Type: "mod-a", Files: []artifacttest.File{artifacttest.Bytes("a.bin", pattern(10)), artifacttest.Bytes("b.txt", []byte("hello"))}, MetaData: []byte(`{"k":["v",1]}`)},
				{Type: "mod-b", Files: []artifacttest.File{artifacttest.Bytes("c", nil)}},
			}}
		var names []string
		rep, err := verifyBytes(build(t, a), Options{Keys: keys, PayloadSink: func(name string, size int64) (io.Writer, error) {
			names = append(names, fmt.Sprintf("%s:%d", name, size))
			return io.Discard, nil
		}})
		require.NoError(t, err)
		assert.Equal(t, []string{"data/0000/a.bin:10", "data/0000/b.txt:5", "data/0001/c:0"}, names)
		assert.Equal(t, []string{"mod-a", "mod-b"}, rep.Types)
		assert.Equal(t, []string{"ArtifactInstall_Enter_00_prep"}, rep.Scripts)
		assert.JSONEq(t, `{"k":["v",1]}`, string(rep.Payloads[0].MetaData))
		var txt bytes.Buffer
		require.NoError(t, rep.WriteText(&txt))
		assert.Contains(t, txt.String(), "Payload 1:           mod-b (zstd)\n")
		assert.Contains(t, txt.String(), "Signature:           verified with key 1 (ECDSA P-256 SHA-256)\n")
	})
	t.Run("sink error is not an invalid artifact", func(t *testing.T) {
		_, err := verifyBytes(base, Options{Keys: keys, PayloadSink: func(string, int64) (io.Writer, error) {
			return nil, errors.New("disk full")
		}})
		assert.EqualError(t, err, "data/0000/rootfs.ext4: payload sink: disk full")
		assert.NotErrorIs(t, err, ErrInvalid)
	})
	t.Run("max payload size", func(t *testing.T) {
		_, err := verifyBytes(base, Options{Keys: keys, MaxPayloadSize: 4999})
		assert.EqualError(t, err, "data/0000/rootfs.ext4: payload files exceed the limit of 4999 bytes")
	})
	t.Run("read error is not an invalid artifact", func(t *testing.T) {
		r := io.MultiReader(bytes.NewReader(base[:3000]), errReader{errors.New("EIO")})
		_, err := Verify(context.Background(), r, Options{Keys: keys})
		assert.EqualError(t, err, "read artifact: EIO")
		assert.Equal(t, ExitUsage, ExitCode(err))
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Verify(ctx, bytes.NewReader(base), Options{Keys: keys})
		assert.ErrorIs(t, err, context.Canceled)
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestVerifyNotATar(t *testing.T) {
	ec, _ := ecKeys(t)
	_, err := verifyBytes(bytes.Repeat([]byte("x"), 2048), Options{Keys: []PublicKey{ec.pub}})
	require.ErrorIs(t, err, ErrInvalid)
	assert.EqualError(t, err, "first tar header: archive/tar: invalid tar header")
}

func TestReportJSON(t *testing.T) {
	ec, _ := ecKeys(t)
	rep, err := verifyBytes(build(t, rootfs(ec.priv, "gzip", pattern(100))), Options{Keys: []PublicKey{ec.pub}})
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, rep.WriteJSON(&b))
	assert.JSONEq(t, `{
	  "name": "release-1", "format": "mender", "version": 3,
	  "types": ["rootfs-image"], "compatible_devices": ["qemux86-64", "raspberrypi4"],
	  "header_compression": "gzip",
	  "payloads": [{"index": 0, "type": "rootfs-image", "compression": "gzip",
	    "files": [{"name": "rootfs.ext4", "size": 100, "sha256": "56fee4b12b280ea1e7c1b550002bb18b342ccbd7229cd4b147ea07aa1a691294"}],
	    "artifact_provides": {"rootfs-image.version": "release-1"}}],
	  "signed": true, "signature_verified": true, "key_index": 0, "key_algorithm": "ECDSA P-256 SHA-256"}`, b.String())
}
