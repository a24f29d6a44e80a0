package artifact

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// toolKey is a key pair made by openssl, in the formats mender-artifact
// 3.9.0 reads (PKCS#1 / SEC1 private keys).
type toolKey struct {
	name string
	priv string // private key file
	pub  string // public key file
	sig  crypto.Signer
}

var (
	toolKeysOnce sync.Once
	toolKeys     []toolKey
	toolKeysErr  error
)

// opensslKeys makes RSA-2048/3072/4096 and ECDSA P-256 keys with openssl,
// once per test binary.
func opensslKeys(t *testing.T) []toolKey {
	t.Helper()
	openssl := testenv.LookPath(t, "openssl")
	toolKeysOnce.Do(func() {
		for _, k := range []struct {
			name string
			args []string
		}{
			{"rsa2048", []string{"genrsa", "-traditional", "-out", "OUT", "2048"}},
			{"rsa3072", []string{"genrsa", "-traditional", "-out", "OUT", "3072"}},
			{"rsa4096", []string{"genrsa", "-traditional", "-out", "OUT", "4096"}},
			{"ecdsa-p256", []string{"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "OUT"}},
		} {
			priv := filepath.Join(fixtureDir, k.name+".key")
			pub := filepath.Join(fixtureDir, k.name+".pub")
			args := append([]string(nil), k.args...)
			for i := range args {
				if args[i] == "OUT" {
					args[i] = priv
				}
			}
			if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
				toolKeysErr = fmt.Errorf("openssl %v: %v: %s", k.args, err, out)
				return
			}
			if out, err := exec.Command(openssl, "pkey", "-in", priv, "-pubout", "-out", pub).CombinedOutput(); err != nil {
				toolKeysErr = fmt.Errorf("openssl pkey: %v: %s", err, out)
				return
			}
			pemBytes, _ := os.ReadFile(priv)
			block, _ := pem.Decode(pemBytes)
			var s crypto.Signer
			var err error
			if block.Type == "RSA PRIVATE KEY" {
				s, err = x509.ParsePKCS1PrivateKey(block.Bytes)
			} else {
				s, err = x509.ParseECPrivateKey(block.Bytes)
			}
			if err != nil {
				toolKeysErr = err
				return
			}
			toolKeys = append(toolKeys, toolKey{k.name, priv, pub, s})
		}
	})
	require.NoError(t, toolKeysErr)
	return toolKeys
}

// menderWrite runs `mender-artifact [--compression C] write KIND ARGS`.
func menderWrite(t *testing.T, tool, compression, kind string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "a.mender")
	cmd := exec.Command(tool, append([]string{"--compression", compression, "write", kind, "-o", out}, args...)...)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "mender-artifact write: %s", b)
	return out
}

// toolValidate reports whether `mender-artifact validate -k pub` accepts
// the file. 3.9.0 exits 0 on some parameter errors, so success also needs
// its "validated successfully" line (format doc §10).
func toolValidate(t *testing.T, tool, pub string, art []byte) (bool, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "v.mender")
	require.NoError(t, os.WriteFile(f, art, 0o600))
	out, err := exec.Command(tool, "validate", "-k", pub, f).CombinedOutput()
	return err == nil && bytes.Contains(out, []byte("validated successfully")), strings.TrimSpace(string(out))
}

// payloadFiles writes the payload files of the interop artifacts.
func payloadFiles(t *testing.T) (rootfs string, module []string) {
	t.Helper()
	d := t.TempDir()
	rootfs = filepath.Join(d, "rootfs.ext4")
	require.NoError(t, os.WriteFile(rootfs, pattern(300<<10), 0o600))
	for i, n := range []string{"module-a.bin", "module-b.txt", "module-c.bin"} {
		p := filepath.Join(d, n)
		require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1)), 0o600))
		module = append(module, p)
	}
	return rootfs, module
}

func TestInteropToolArtifactsVerify(t *testing.T) {
	tool := testenv.LookPath(t, "mender-artifact")
	keys := opensslKeys(t)
	rootfs, module := payloadFiles(t)
	for _, k := range keys {
		pub, err := LoadKeys(k.pub)
		require.NoError(t, err)
		for _, comp := range []string{"none", "gzip", "lzma"} {
			for _, kind := range []string{"rootfs-image", "module-image"} {
				t.Run(k.name+"/"+comp+"/"+kind, func(t *testing.T) {
					args := []string{"-n", "rel-" + k.name, "-t", "dev-a", "-t", "dev-b", "-k", k.priv}
					wantFiles := []string{"rootfs.ext4"}
					wantType := "rootfs-image"
					if kind == "rootfs-image" {
						args = append(args, "-f", rootfs)
					} else {
						wantType, wantFiles = "my-module", []string{"module-a.bin", "module-b.txt", "module-c.bin"}
						args = append(args, "-T", wantType)
						for _, m := range module {
							args = append(args, "-f", m)
						}
					}
					art, err := os.ReadFile(menderWrite(t, tool, comp, kind, args...))
					require.NoError(t, err)
					rep, err := verifyBytes(art, Options{Keys: pub})
					require.NoError(t, err)
					assert.Equal(t, "rel-"+k.name, rep.Name)
					assert.Equal(t, []string{wantType}, rep.Types)
					assert.Equal(t, []string{"dev-a", "dev-b"}, rep.CompatibleDevices)
					assert.Equal(t, k.pub, rep.KeyPath)
					var names []string
					for _, f := range rep.Payloads[0].Files {
						names = append(names, f.Name)
					}
					assert.Equal(t, wantFiles, names)
					ok, out := toolValidate(t, tool, k.pub, art)
					assert.True(t, ok, "the tool's own verdict: %s", out)
				})
			}
		}
	}
}

func TestInteropMutations(t *testing.T) {
	tool := testenv.LookPath(t, "mender-artifact")
	keys := opensslKeys(t)
	rootfs, module := payloadFiles(t)
	for ki, k := range keys {
		other := keys[(ki+1)%len(keys)]
		pub, err := LoadKeys(k.pub)
		require.NoError(t, err)
		for _, comp := range []string{"gzip", "lzma"} {
			sfx := artifacttest.Suffix(comp)
			base, err := os.ReadFile(menderWrite(t, tool, comp, "rootfs-image", "-n", "r1", "-t", "dev", "-k", k.priv, "-f", rootfs))
			require.NoError(t, err)
			unsigned, err := os.ReadFile(menderWrite(t, tool, comp, "rootfs-image", "-n", "r1", "-t", "dev", "-f", rootfs))
			require.NoError(t, err)
			augArgs := []string{"-n", "aug", "-t", "dev", "-k", k.priv, "-T", "my-module", "-f", module[0], "--augment-file", module[1], "--augment-type", "my-module"}
			augmented, err := os.ReadFile(menderWrite(t, tool, comp, "module-image", augArgs...))
			require.NoError(t, err)
			mut := func(fn func(ms []artifacttest.Member) []artifacttest.Member) []byte {
				return rewrite(t, base, fn)
			}
			// Where a cut payload is noticed depends on the decoder's read-ahead:
			// in the file for gzip, in the xz block for lzma.
			dataName := "data/0000.tar" + sfx
			tests := []struct {
				name string
				art  []byte
				pub  string // key given to both verifiers; default k.pub
				want string
				// toolDiffers says why mender-artifact 3.9.0 accepts what we reject.
				toolDiffers string
			}{
				{name: "manifest byte", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					if ms[1].Data[0] == '0' {
						ms[1].Data[0] = '1'
					} else {
						ms[1].Data[0] = '0'
					}
					return ms
				}), want: "manifest.sig: signature does not verify"},
				{name: "signature byte", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					c := &ms[2].Data[20]
					if *c == 'A' {
						*c = 'B'
					} else {
						*c = 'A'
					}
					return ms
				}), want: "manifest.sig: signature does not verify"},
				{name: "header byte", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					ms[3].Data[len(ms[3].Data)/2] ^= 0x10
					return ms
				}), want: "header.tar" + sfx + ": sha256 mismatch"},
				{name: "payload byte", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					i := artifacttest.Find(ms, dataName)
					r, err := artifacttest.Decompress(bytes.NewReader(ms[i].Data), sfx)
					require.NoError(t, err)
					var raw bytes.Buffer
					_, err = raw.ReadFrom(r)
					require.NoError(t, err)
					raw.Bytes()[512+1000] ^= 1 // inside rootfs.ext4
					var c bytes.Buffer
					w, err := artifacttest.Compress(&c, comp, 0)
					require.NoError(t, err)
					_, _ = w.Write(raw.Bytes())
					require.NoError(t, w.Close())
					ms[i].Data = c.Bytes()
					return ms
				}), want: "data/0000/rootfs.ext4: sha256 mismatch"},
				{name: "other key", art: base, pub: other.pub, want: "manifest.sig: signature does not verify"},
				{name: "unsigned", art: unsigned, want: "manifest.sig: missing: the artifact is not signed but verification keys are configured"},
				{name: "truncated in version", art: base[:520], want: "version: truncated: the input ends after 520 bytes"},
				{name: "truncated after version", art: base[:700], want: `truncated after member "version": the input ends after 700 bytes`},
				{name: "truncated in manifest header", art: base[:1100], want: `truncated after member "version": the input ends after 1100 bytes`},
				{name: "truncated in manifest", art: base[:1600], want: "manifest: truncated: the input ends after 1600 bytes"},
				{name: "truncated in payload", art: base[:len(base)-1024-520], want: map[string]string{"gzip": "data/0000/rootfs.ext4", "lzma": dataName}[comp] + ": truncated: the input ends after " + fmt.Sprint(len(base)-1024-520) + " bytes"},
				{name: "truncated before end marker", art: base[:len(base)-1024], want: "missing tar end-of-archive marker",
					toolDiffers: "mender-artifact accepts an archive without its end-of-archive marker; we require it so a cut at a member boundary is never taken for a complete Artifact"},
				{name: "extra member", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					return append(ms, artifacttest.Member{Name: "extra.sh", Data: []byte("#!/bin/sh\n")})
				}), want: "extra.sh: unexpected member; want data/0001.tar[.gz|.xz|.zst] or the end of the archive"},
				{name: "extra data member", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					return append(ms, artifacttest.Member{Name: "data/0001.tar" + sfx, Data: []byte("anything")})
				}), want: "data/0001.tar" + sfx + ": extra payload member: header-info has 1 payload(s)",
					toolDiffers: "mender-artifact skips a data member with no payload without opening it (format doc §7); we refuse unsigned extra content"},
				{name: "trailing data", art: append(bytes.Clone(base), []byte("unsigned trailer")...), want: fmt.Sprintf("non-zero data after the tar end-of-archive marker (byte %d)", len(base)),
					toolDiffers: "mender-artifact ignores bytes after the end-of-archive marker; we accept only zero padding"},
				{name: "manifest-augment", art: augmented, want: "manifest-augment: augmented artifacts are refused: augment sections are not covered by the signature",
					toolDiffers: "mender-artifact accepts augmented Artifacts whose augment sections are unsigned (format doc §5, §12.1)"},
				{name: "duplicate payload entry", art: mut(func(ms []artifacttest.Member) []artifacttest.Member {
					i := artifacttest.Find(ms, dataName)
					r, err := artifacttest.Decompress(bytes.NewReader(ms[i].Data), sfx)
					require.NoError(t, err)
					var raw bytes.Buffer
					_, err = raw.ReadFrom(r)
					require.NoError(t, err)
					entry := raw.Bytes()[:512+(300<<10)]
					dup := append(append(bytes.Clone(entry), entry...), make([]byte, 1024)...)
					var c bytes.Buffer
					w, err := artifacttest.Compress(&c, comp, 0)
					require.NoError(t, err)
					_, _ = w.Write(dup)
					require.NoError(t, w.Close())
					ms[i].Data = c.Bytes()
					return ms
				}), want: "data/0000/rootfs.ext4: appears twice in the payload",
					toolDiffers: "mender-artifact accepts a payload file listed twice with identical content (format doc §7)"},
			}
			for _, tt := range tests {
				t.Run(k.name+"/"+comp+"/"+tt.name, func(t *testing.T) {
					pubPath := k.pub
					if tt.pub != "" {
						pubPath = tt.pub
					}
					keys, err := LoadKeys(pubPath)
					require.NoError(t, err)
					_ = pub
					_, err = verifyBytes(tt.art, Options{Keys: keys})
					require.ErrorIs(t, err, ErrInvalid)
					if tt.name == "other key" {
						assert.True(t, strings.HasPrefix(err.Error(), tt.want), err.Error())
						assert.ErrorIs(t, err, ErrBadSignature)
					} else {
						assert.Equal(t, tt.want, err.Error())
					}
					toolOK, out := toolValidate(t, tool, pubPath, tt.art)
					if tt.toolDiffers == "" {
						assert.False(t, toolOK, "mender-artifact accepted it: %s", out)
					} else {
						assert.True(t, toolOK, "expected the tool to differ (%s), but it rejected: %s", tt.toolDiffers, out)
					}
				})
			}
		}
	}
}

// TestInteropReencoded covers Artifacts the tool writes that we re-encode
// in ways the format allows: zstd (recompressed, re-signed) and ECDSA DER
// signatures. mender-artifact 3.9.0 reads neither.
func TestInteropReencoded(t *testing.T) {
	tool := testenv.LookPath(t, "mender-artifact")
	keys := opensslKeys(t)
	rootfs, module := payloadFiles(t)
	for _, k := range keys {
		pub, err := LoadKeys(k.pub)
		require.NoError(t, err)
		for _, kind := range []string{"rootfs-image", "module-image"} {
			args := []string{"-n", "z", "-t", "dev", "-k", k.priv, "-f", rootfs}
			if kind == "module-image" {
				args = []string{"-n", "z", "-t", "dev", "-k", k.priv, "-T", "m", "-f", module[0], "-f", module[1], "-f", module[2]}
			}
			art, err := os.ReadFile(menderWrite(t, tool, "gzip", kind, args...))
			require.NoError(t, err)
			for _, level := range []int{1, 3, 19} {
				t.Run(fmt.Sprintf("%s/%s/zstd-%d", k.name, kind, level), func(t *testing.T) {
					z := rewrite(t, art, func(ms []artifacttest.Member) []artifacttest.Member {
						ms, err := artifacttest.Recompress(ms, "zstd", level)
						require.NoError(t, err)
						ms, err = artifacttest.Resign(ms, k.sig, artifacttest.SignOptions{})
						require.NoError(t, err)
						return ms
					})
					rep, err := verifyBytes(z, Options{Keys: pub})
					require.NoError(t, err)
					assert.Equal(t, "zstd", rep.HeaderCompression)
					assert.Equal(t, "zstd", rep.Payloads[0].Compression)
					toolOK, _ := toolValidate(t, tool, k.pub, z)
					assert.False(t, toolOK, "mender-artifact 3.9.0 has no zstd reader (added in 3.10.1); if this fails the tool was upgraded")
				})
			}
			if k.name == "ecdsa-p256" {
				t.Run(k.name+"/"+kind+"/der", func(t *testing.T) {
					der := rewrite(t, art, func(ms []artifacttest.Member) []artifacttest.Member {
						ms, err := artifacttest.Resign(ms, k.sig, artifacttest.SignOptions{DER: true})
						require.NoError(t, err)
						return ms
					})
					_, err := verifyBytes(der, Options{Keys: pub})
					require.NoError(t, err)
					toolOK, _ := toolValidate(t, tool, k.pub, der)
					assert.False(t, toolOK, "mender-artifact 3.9.0 reads raw r||s only; DER came in 4.0.0")
				})
			}
		}
	}
}
