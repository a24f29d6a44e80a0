// Package artifacttest writes Mender Artifacts (format version 3) for
// tests: streamed payloads of any size, every compression the verifier
// reads (none, gzip, xz, zstd), signatures with any crypto.Signer, and
// member-level rewriting (recompress, re-sign, tamper) of existing files.
//
// It is test infrastructure: shipped code must not import it. It imports
// the standard library, klauspost/compress and ulikunitz/xz.
package artifacttest

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// File is one payload file. Open returns a fresh reader of exactly Size
// bytes; Write calls it twice (once to hash, once to write), so it must
// produce the same bytes each time.
type File struct {
	Name string
	Size int64
	Open func() io.Reader
}

// Bytes is a File holding b.
func Bytes(name string, b []byte) File {
	return File{Name: name, Size: int64(len(b)), Open: func() io.Reader { return bytes.NewReader(b) }}
}

// Payload is one payload of an Artifact.
type Payload struct {
	// Type is the payload type; "" writes a bootstrap (null) payload.
	Type string
	// TypeInfoType, if not nil, overrides the type written in type-info
	// (mender-artifact up to 4.3 writes "" for rootfs-image).
	TypeInfoType *string
	Files        []File
	Provides     map[string]string
	MetaData     []byte // nil: no meta-data entry
}

// Artifact describes an Artifact to write.
type Artifact struct {
	Name        string
	Devices     []string
	Payloads    []Payload
	Scripts     map[string][]byte
	Compression string // "none", "gzip" (default), "xz", "zstd"
	// Level is the gzip or zstd level; 0 picks the library default.
	Level int
	// Signer signs the manifest; nil writes an unsigned Artifact.
	Signer crypto.Signer
	Sign   SignOptions
}

// SignOptions choose the signature encoding; the zero value is what
// mender-artifact writes (PKCS#1 v1.5 SHA-256, ECDSA raw r||s SHA-256).
type SignOptions struct {
	DER  bool        // ECDSA: ASN.1 DER instead of raw r||s
	PSS  bool        // RSA: PSS instead of PKCS#1 v1.5
	Hash crypto.Hash // digest; 0 means SHA-256
}

// Suffix is the member suffix of a compression name.
func Suffix(compression string) string {
	switch compression {
	case "gzip", "":
		return ".gz"
	case "xz", "lzma":
		return ".xz"
	case "zstd":
		return ".zst"
	}
	return ""
}

// Compress wraps w in the named compressor.
func Compress(w io.Writer, compression string, level int) (io.WriteCloser, error) {
	switch compression {
	case "gzip", "":
		if level == 0 {
			level = gzip.DefaultCompression
		}
		return gzip.NewWriterLevel(w, level)
	case "xz", "lzma":
		return xz.NewWriter(w)
	case "zstd":
		l := zstd.SpeedDefault
		if level != 0 {
			l = zstd.EncoderLevelFromZstd(level)
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1))
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", compression)
}

// Decompress opens a reader of the stream compressed with the suffix's
// compressor.
func Decompress(r io.Reader, suffix string) (io.Reader, error) {
	switch suffix {
	case ".gz":
		return gzip.NewReader(r)
	case ".xz":
		return xz.NewReader(r)
	case ".zst":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "":
		return r, nil
	}
	return nil, fmt.Errorf("unknown suffix %q", suffix)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// countWriter counts and discards.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// Write writes the Artifact to w, streaming payload files.
func (a *Artifact) Write(w io.Writer) error {
	sfx := Suffix(a.Compression)
	// Pass 1: file hashes and compressed data member sizes.
	sums := make([][]string, len(a.Payloads))
	sizes := make([]int64, len(a.Payloads))
	for i, p := range a.Payloads {
		var cw countWriter
		s, err := a.dataTar(&cw, p, true)
		if err != nil {
			return err
		}
		sums[i], sizes[i] = s, cw.n
	}
	hdr, err := a.header(sums)
	if err != nil {
		return err
	}
	var mf bytes.Buffer
	for i, p := range a.Payloads {
		for j, f := range p.Files {
			fmt.Fprintf(&mf, "%s  data/%04d/%s\n", sums[i][j], i, f.Name)
		}
	}
	hs := sha256.Sum256(hdr)
	fmt.Fprintf(&mf, "%x  header.tar%s\n", hs, sfx)
	version := []byte(`{"format":"mender","version":3}`)
	vs := sha256.Sum256(version)
	fmt.Fprintf(&mf, "%x  version\n", vs)

	tw := tar.NewWriter(w)
	members := []Member{{Name: "version", Data: version}, {Name: "manifest", Data: mf.Bytes()}}
	if a.Signer != nil {
		sig, err := SignManifest(mf.Bytes(), a.Signer, a.Sign)
		if err != nil {
			return err
		}
		members = append(members, Member{Name: "manifest.sig", Data: sig})
	}
	members = append(members, Member{Name: "header.tar" + sfx, Data: hdr})
	for _, m := range members {
		if err := writeMember(tw, m.Name, m.Data); err != nil {
			return err
		}
	}
	// Pass 2: data members.
	for i, p := range a.Payloads {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%04d.tar%s", i, sfx), Mode: 0o600, Size: sizes[i], Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := a.dataTar(tw, p, false); err != nil {
			return err
		}
	}
	return tw.Close()
}

// dataTar writes the compressed inner tar of p to w; with sum it returns
// the hex SHA-256 of every file.
func (a *Artifact) dataTar(w io.Writer, p Payload, sum bool) ([]string, error) {
	cw, err := Compress(w, a.Compression, a.Level)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(cw)
	var sums []string
	buf := make([]byte, 256<<10)
	for _, f := range p.Files {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: 0o644, Size: f.Size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		var h hash.Hash
		r := f.Open()
		if sum {
			h = sha256.New()
			r = io.TeeReader(r, h)
		}
		n, err := io.CopyBuffer(tw, r, buf)
		if err != nil {
			return nil, fmt.Errorf("payload file %s: %w", f.Name, err)
		}
		if n != f.Size {
			return nil, fmt.Errorf("payload file %s: got %d bytes, want %d", f.Name, n, f.Size)
		}
		if sum {
			sums = append(sums, hex.EncodeToString(h.Sum(nil)))
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return sums, cw.Close()
}

// header builds the compressed header.tar.
func (a *Artifact) header(sums [][]string) ([]byte, error) {
	type pl struct {
		Type *string `json:"type"`
	}
	info := map[string]any{
		"artifact_provides": map[string]string{"artifact_name": a.Name},
		"artifact_depends":  map[string]any{"device_type": a.Devices},
	}
	var pls []pl
	for _, p := range a.Payloads {
		var t *string
		if p.Type != "" {
			t = &p.Type
		}
		pls = append(pls, pl{t})
	}
	info["payloads"] = pls
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	hi, _ := json.Marshal(info)
	if err := writeMember(tw, "header-info", hi); err != nil {
		return nil, err
	}
	var names []string
	for n := range a.Scripts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := writeMember(tw, "scripts/"+n, a.Scripts[n]); err != nil {
			return nil, err
		}
	}
	for i, p := range a.Payloads {
		ti := map[string]any{}
		switch {
		case p.TypeInfoType != nil:
			ti["type"] = *p.TypeInfoType
		case p.Type == "":
			ti["type"] = nil
		default:
			ti["type"] = p.Type
		}
		if len(p.Provides) > 0 {
			ti["artifact_provides"] = p.Provides
		}
		tb, _ := json.Marshal(ti)
		if err := writeMember(tw, fmt.Sprintf("headers/%04d/type-info", i), tb); err != nil {
			return nil, err
		}
		if p.MetaData != nil {
			if err := writeMember(tw, fmt.Sprintf("headers/%04d/meta-data", i), p.MetaData); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return compressBytes(raw.Bytes(), a.Compression, a.Level)
}

func compressBytes(b []byte, compression string, level int) ([]byte, error) {
	var out bytes.Buffer
	cw, err := Compress(&out, compression, level)
	if err != nil {
		return nil, err
	}
	if _, err := cw.Write(b); err != nil {
		return nil, err
	}
	if err := cw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func writeMember(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// SignManifest signs manifest and returns the base64 manifest.sig text.
func SignManifest(manifest []byte, key crypto.Signer, o SignOptions) ([]byte, error) {
	hf := o.Hash
	if hf == 0 {
		hf = crypto.SHA256
	}
	h := hf.New()
	h.Write(manifest)
	digest := h.Sum(nil)
	var opts crypto.SignerOpts = hf
	if o.PSS {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: hf}
	}
	sig, err := key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, err
	}
	if pub, ok := key.Public().(*ecdsa.PublicKey); ok && !o.DER {
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			return nil, err
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw := make([]byte, 2*size)
		rs.R.FillBytes(raw[:size])
		rs.S.FillBytes(raw[size:])
		sig = raw
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// Member is one member of the outer tar.
type Member struct {
	Name string
	Data []byte
}

// ReadMembers reads every member of a (small) Artifact into memory.
func ReadMembers(r io.Reader) ([]Member, error) {
	tr := tar.NewReader(r)
	var ms []Member
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return ms, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Member{Name: h.Name, Data: b})
	}
}

// WriteMembers writes members as an Artifact's outer tar.
func WriteMembers(w io.Writer, ms []Member) error {
	tw := tar.NewWriter(w)
	for _, m := range ms {
		if err := writeMember(tw, m.Name, m.Data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Find returns the index of the member named name, or -1.
func Find(ms []Member, name string) int {
	for i, m := range ms {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// Recompress rewrites the header and data members with another
// compression, renaming them and updating the manifest's header line. The
// signature is stale afterwards: call Resign.
func Recompress(ms []Member, compression string, level int) ([]Member, error) {
	out := make([]Member, 0, len(ms))
	sfx := Suffix(compression)
	var oldHeader, newHeader string
	var newSum [32]byte
	for _, m := range ms {
		base, oldSfx, ok := splitTar(m.Name)
		if !ok {
			out = append(out, m)
			continue
		}
		dr, err := Decompress(bytes.NewReader(m.Data), oldSfx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		raw, err := io.ReadAll(dr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		data, err := compressBytes(raw, compression, level)
		if err != nil {
			return nil, err
		}
		nm := Member{Name: base + ".tar" + sfx, Data: data}
		if base == "header" {
			oldHeader, newHeader, newSum = m.Name, nm.Name, sha256.Sum256(data)
		}
		out = append(out, nm)
	}
	if i := Find(out, "manifest"); i >= 0 && oldHeader != "" {
		var b strings.Builder
		for _, line := range strings.SplitAfter(string(out[i].Data), "\n") {
			if strings.HasSuffix(line, "  "+oldHeader+"\n") {
				line = fmt.Sprintf("%x  %s\n", newSum, newHeader)
			}
			b.WriteString(line)
		}
		out[i].Data = []byte(b.String())
	}
	return out, nil
}

// splitTar splits "header.tar.gz" or "data/0000.tar" into base and suffix.
func splitTar(name string) (base, suffix string, ok bool) {
	i := strings.Index(name, ".tar")
	if i < 0 || !(strings.HasPrefix(name, "header.") || strings.HasPrefix(name, "data/")) {
		return "", "", false
	}
	return name[:i], name[i+4:], true
}

// Resign replaces (or adds) manifest.sig with a signature of the current
// manifest; a nil key removes it.
func Resign(ms []Member, key crypto.Signer, o SignOptions) ([]Member, error) {
	mi := Find(ms, "manifest")
	if mi < 0 {
		return nil, errors.New("no manifest member")
	}
	out := make([]Member, 0, len(ms)+1)
	for _, m := range ms {
		if m.Name != "manifest.sig" {
			out = append(out, m)
		}
	}
	if key == nil {
		return out, nil
	}
	sig, err := SignManifest(ms[mi].Data, key, o)
	if err != nil {
		return nil, err
	}
	mi = Find(out, "manifest")
	out = append(out[:mi+1], append([]Member{{Name: "manifest.sig", Data: sig}}, out[mi+1:]...)...)
	return out, nil
}
