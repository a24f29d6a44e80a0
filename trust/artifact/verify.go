package artifact

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/sirupsen/logrus"
)

// Log field names.
const (
	logMember = "member"
	logKey    = "key"
	logSize   = "size"
)

// Options configure Verify.
type Options struct {
	// Keys are the trusted verification keys, tried in order (key
	// rotation). With at least one key, an unsigned Artifact is rejected.
	Keys []PublicKey
	// IntegrityOnly allows Verify without Keys: the structure and every
	// hash are checked, and a signature, if present, is reported but not
	// verified. Without it, Verify with no Keys returns ErrNoKeys.
	IntegrityOnly bool
	// PayloadSink, if not nil, is called for each payload file with its
	// manifest path ("data/0000/rootfs.ext4") and size; the file's bytes
	// are written to the returned writer as they stream, before their hash
	// is known. Stage them and commit only when Verify returns nil. Nil
	// discards payload bytes after hashing them.
	PayloadSink func(name string, size int64) (io.Writer, error)
	// MaxPayloadSize, if positive, bounds the total size of all payload
	// files.
	MaxPayloadSize int64
	// Logger receives debug records of the verification; nil logs nothing.
	Logger logrus.FieldLogger
}

// Verify reads a Mender Artifact (format version 3) from r and verifies it:
// the manifest signature against opts.Keys, then every hash in the manifest
// against the version, header and payload file contents, and the structure
// rules described in the package documentation. It reads r to its end.
//
// On success it returns the Artifact's description. A rejected Artifact
// gives an error that wraps ErrInvalid (as an *Error naming the member or
// file at fault); other errors are about reading r, the payload sink, the
// context or the configuration.
//
// Verify runs the decompression of each payload in a goroutine of its own
// and waits for it before returning; a Read blocked on r delays that, so to
// abandon a verification cancel ctx and close r. It is safe to call Verify
// concurrently on different readers.
func Verify(ctx context.Context, r io.Reader, opts Options) (*Report, error) {
	if len(opts.Keys) == 0 && !opts.IntegrityOnly {
		return nil, ErrNoKeys
	}
	v := &verifier{ctx: ctx, opts: opts, log: opts.Logger}
	if v.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		v.log = l
	}
	v.in = &input{r: r}
	v.outer = &counter{r: bufio.NewReaderSize(v.in, 64<<10)}
	v.tr = tar.NewReader(v.outer)
	v.buf = make([]byte, 32<<10)
	v.hash = sha256.New()
	defer v.dec.close()
	defer func() {
		if v.pipe != nil {
			v.pipe.stop()
		}
	}()
	rep, err := v.run()
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// verifier is the state of one Verify call; it is used by one goroutine,
// apart from the pipe's producer.
type verifier struct {
	ctx   context.Context
	opts  Options
	log   logrus.FieldLogger
	in    *input
	outer *counter
	tr    *tar.Reader
	pipe  *pipe
	dec   decompressors
	buf   []byte
	hash  hash.Hash

	member    string // current outer member
	memberEnd int64  // outer count at the end of its content
	mf        *manifest
	payloadSz int64
}

// next returns the next outer member, checked to be a plain regular file.
// It returns (nil, nil) at the end of the archive.
func (v *verifier) next() (*tar.Header, error) {
	if err := v.ctx.Err(); err != nil {
		return nil, err
	}
	hdr, err := v.tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		if v.in.eof && errors.Is(err, io.ErrUnexpectedEOF) && v.in.err == nil {
			return nil, v.ended(v.member)
		}
		if v.member == "" {
			return nil, v.fail("", fmt.Errorf("first tar header: %w", err))
		}
		return nil, v.fail(v.member, fmt.Errorf("tar header after this member: %w", err))
	}
	if err := checkRegular(hdr); err != nil {
		return nil, invalid(hdr.Name, err.Error())
	}
	v.member = hdr.Name
	v.memberEnd = v.outer.n + hdr.Size
	v.log.WithField(logMember, hdr.Name).WithField(logSize, hdr.Size).Debug("artifact member")
	return hdr, nil
}

// fail classifies an error met while reading member path: an I/O error on
// the input, a cancelled context, a truncated input, or a rejection.
func (v *verifier) fail(path string, err error) error {
	var inv *Error
	switch {
	case v.in.err != nil:
		return fmt.Errorf("read artifact: %w", v.in.err)
	case v.ctx.Err() != nil:
		return v.ctx.Err()
	case v.in.eof && v.outer.n < v.memberEnd:
		return invalid(path, fmt.Sprintf("truncated: the input ends after %d bytes", v.in.n))
	case errors.As(err, &inv):
		return err
	}
	return &Error{Path: path, Reason: tarReason(err), Err: err}
}

// ended reports an input that ended after member prev, where another
// member was due.
func (v *verifier) ended(prev string) error {
	if v.in.err != nil {
		return fmt.Errorf("read artifact: %w", v.in.err)
	}
	if prev == "" {
		return invalid("", fmt.Sprintf("truncated: the input ends after %d bytes, before the first member", v.in.n))
	}
	return invalid("", fmt.Sprintf("truncated after member %q: the input ends after %d bytes", prev, v.in.n))
}

// readSmall reads a whole member of at most limit bytes.
func (v *verifier) readSmall(hdr *tar.Header, limit int64) ([]byte, error) {
	if hdr.Size > limit {
		return nil, invalid(hdr.Name, fmt.Sprintf("%d bytes exceeds the limit of %d", hdr.Size, limit))
	}
	b := make([]byte, hdr.Size)
	if _, err := io.ReadFull(v.tr, b); err != nil {
		return nil, v.fail(hdr.Name, err)
	}
	return b, nil
}

func (v *verifier) run() (*Report, error) {
	rep := &Report{KeyIndex: -1}

	// 1. version
	hdr, err := v.next()
	if err != nil {
		return nil, err
	}
	if hdr == nil {
		return nil, v.ended("")
	}
	if hdr.Name != "version" {
		return nil, invalid(hdr.Name, "first member must be \"version\"")
	}
	versionRaw, err := v.readSmall(hdr, MaxVersionSize)
	if err != nil {
		return nil, err
	}
	var ver struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := decodeStrict(versionRaw, &ver); err != nil {
		return nil, invalid("version", err.Error())
	}
	if ver.Format != "mender" {
		return nil, invalid("version", fmt.Sprintf("format %q is not \"mender\"", ver.Format))
	}
	if ver.Version != 3 {
		return nil, invalid("version", fmt.Sprintf("format version %d is not supported; only version 3 is (mender-artifact write -v 3)", ver.Version))
	}
	rep.Format, rep.Version = ver.Format, ver.Version

	// 2. manifest
	if hdr, err = v.next(); err != nil {
		return nil, err
	}
	if hdr == nil {
		return nil, v.ended("version")
	}
	if hdr.Name != "manifest" {
		return nil, invalid(hdr.Name, "unexpected member; want \"manifest\" after \"version\"")
	}
	manifestRaw, err := v.readSmall(hdr, MaxManifestSize)
	if err != nil {
		return nil, err
	}

	// 3. manifest.sig, verified before the manifest is parsed
	if hdr, err = v.next(); err != nil {
		return nil, err
	}
	if hdr == nil {
		return nil, v.ended("manifest")
	}
	if hdr.Name == "manifest.sig" {
		sigText, err := v.readSmall(hdr, MaxSignatureSize)
		if err != nil {
			return nil, err
		}
		if err := v.checkSignature(rep, manifestRaw, sigText); err != nil {
			return nil, err
		}
		if hdr, err = v.next(); err != nil {
			return nil, err
		}
		if hdr == nil {
			return nil, v.ended("manifest.sig")
		}
	} else if len(v.opts.Keys) > 0 {
		return nil, &Error{Path: "manifest.sig", Reason: "missing: the artifact is not signed but verification keys are configured", Err: ErrUnsigned}
	}

	// 4. the manifest, now trusted
	mf, err := parseManifest(manifestRaw)
	if err != nil {
		return nil, err
	}
	v.mf = mf
	if sha256.Sum256(versionRaw) != mf.entries["version"].sum {
		return nil, invalid("version", "sha256 mismatch")
	}
	mf.entries["version"].used = true

	// 5. header, hash checked before parsing
	if isAugment(hdr.Name) {
		return nil, invalid(hdr.Name, "augmented artifacts are refused: augment sections are not covered by the signature")
	}
	hc, ok := splitSuffix(hdr.Name, "header")
	if !ok {
		return nil, invalid(hdr.Name, "unexpected member; want header.tar[.gz|.xz|.zst]")
	}
	he := mf.entries[hdr.Name]
	if he == nil {
		return nil, invalid(hdr.Name, fmt.Sprintf("not listed in the manifest (it lists %q)", mf.header))
	}
	headerRaw, err := v.readSmall(hdr, MaxHeaderSize)
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(headerRaw) != he.sum {
		return nil, invalid(hdr.Name, "sha256 mismatch")
	}
	he.used = true
	h, err := v.parseHeaderMember(hdr.Name, hc, headerRaw)
	if err != nil {
		return nil, err
	}
	rep.fill(h, hc)
	for _, e := range mf.order {
		idx, _, err := splitDataPath(e.path)
		switch {
		case err != nil: // version or header
		case idx >= len(h.info.Payloads):
			return nil, invalid(e.path, fmt.Sprintf("manifest lists a file of payload %d but header-info has %d payload(s)", idx, len(h.info.Payloads)))
		case h.info.Payloads[idx].Type == nil:
			return nil, invalid(e.path, fmt.Sprintf("manifest lists a file of payload %d, which is empty (type null)", idx))
		}
	}

	// 6. payloads
	for idx := 0; ; idx++ {
		if hdr, err = v.next(); err != nil {
			return nil, err
		}
		if hdr == nil {
			break
		}
		if isAugment(hdr.Name) {
			return nil, invalid(hdr.Name, "augmented artifacts are refused: augment sections are not covered by the signature")
		}
		base, ok := strings.CutPrefix(hdr.Name, "data/")
		var dc compression
		if ok && len(base) >= 8 {
			dc, ok = splitSuffix(base[4:], "")
			if ok {
				var n int
				n, err = parseIndex(base[:4])
				ok = err == nil && n == idx
			}
		}
		if !ok {
			return nil, invalid(hdr.Name, fmt.Sprintf("unexpected member; want data/%04d.tar[.gz|.xz|.zst] or the end of the archive", idx))
		}
		if idx >= len(h.info.Payloads) {
			return nil, invalid(hdr.Name, fmt.Sprintf("extra payload member: header-info has %d payload(s)", len(h.info.Payloads)))
		}
		p := &rep.Payloads[idx]
		p.Compression = dc.Name()
		if err := v.payload(hdr.Name, idx, dc, p); err != nil {
			return nil, err
		}
	}

	// 7. end of archive and completeness
	if err := tarEnd(v.outer, v.memberEnd, v.lastOuterSize(), v.buf); err != nil {
		return nil, v.fail("", err)
	}
	for _, e := range mf.order {
		if !e.used {
			return nil, invalid(e.path, "listed in the manifest but not in the artifact")
		}
	}
	return rep, nil
}

// lastOuterSize is the size of the last outer member, for the padding.
func (v *verifier) lastOuterSize() int64 {
	// memberEnd - size is where the content started; only the padding of
	// the content matters, which depends on the size modulo 512, and the
	// content started on a block boundary.
	return v.memberEnd % 512
}

func isAugment(name string) bool {
	return name == "manifest-augment" || strings.HasPrefix(name, "header-augment")
}

// checkSignature verifies manifest.sig over the raw manifest with each key
// in order and records the match.
func (v *verifier) checkSignature(rep *Report, manifestRaw, sigText []byte) error {
	rep.Signed = true
	sig, err := base64.StdEncoding.Strict().DecodeString(string(sigText))
	if err != nil {
		return &Error{Path: "manifest.sig", Reason: "not valid base64: " + err.Error(), Err: ErrBadSignature}
	}
	if len(sig) == 0 {
		return &Error{Path: "manifest.sig", Reason: "empty signature", Err: ErrBadSignature}
	}
	if len(v.opts.Keys) == 0 {
		return nil // IntegrityOnly: reported as signed, not verified
	}
	var first error
	for i, k := range v.opts.Keys {
		err := k.Verify(manifestRaw, sig)
		if err == nil {
			rep.SignatureVerified = true
			rep.KeyIndex, rep.KeyPath, rep.KeyAlgorithm = i, k.Path, k.Algorithm()
			v.log.WithField(logKey, i).Debug("manifest signature verified")
			return nil
		}
		if first == nil {
			first = err
		}
	}
	reason := "signature does not verify"
	if len(v.opts.Keys) > 1 {
		reason = fmt.Sprintf("signature does not verify with any of the %d keys", len(v.opts.Keys))
	}
	if d := strings.TrimPrefix(first.Error(), ErrBadSignature.Error()); d != "" && len(v.opts.Keys) == 1 {
		reason += d
	}
	return &Error{Path: "manifest.sig", Reason: reason, Err: ErrBadSignature}
}

// parseHeaderMember decompresses (bounded) and parses the header.
func (v *verifier) parseHeaderMember(name string, c compression, raw []byte) (*header, error) {
	if c == compXz {
		raw = shrinkXzDict(raw, MaxHeaderUncompressed)
	}
	dr, err := v.dec.open(c, bytes.NewReader(raw))
	if err != nil {
		return nil, invalidErr(name, err)
	}
	lr := &limitReader{r: dr, n: MaxHeaderUncompressed}
	h, err := parseHeader(name, lr)
	if lr.hit {
		return nil, invalid(name, fmt.Sprintf("decompresses to more than %d bytes", MaxHeaderUncompressed))
	}
	return h, err
}

// limitReader fails, rather than ending quietly, past n bytes.
type limitReader struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.hit = true
		return 0, errors.New("size limit reached")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// readError is a failure to read from a stream that must be classified
// (truncation, corruption, I/O) once the pipe has stopped.
type readError struct {
	path string
	err  error
}

func (e *readError) Error() string { return e.path + ": " + e.err.Error() }

// payload verifies data member name (payload idx): every entry is a
// regular file with a bare name listed in the manifest, hashed while it
// streams to the sink. Decompression runs in the pipe's goroutine, which
// is stopped before any error is classified.
func (v *verifier) payload(name string, idx int, c compression, p *Payload) error {
	dr, err := v.dec.open(c, v.tr)
	if err != nil {
		return v.fail(name, err)
	}
	if v.pipe == nil { // allocated on first use: most rejections come earlier
		bufs := make([][]byte, pipeChunks)
		for i := range bufs {
			bufs[i] = make([]byte, pipeChunkSize)
		}
		v.pipe = newPipe(bufs)
	}
	v.pipe.start(v.ctx, dr)
	err = v.payloadEntries(name, idx, p)
	v.pipe.stop()
	var re *readError
	if errors.As(err, &re) {
		return v.fail(re.path, re.err)
	}
	return err
}

func (v *verifier) payloadEntries(name string, idx int, p *Payload) error {
	ic := &innerTar{p: v.pipe}
	itr := tar.NewReader(ic)
	var contentEnd, lastSize int64
	for {
		hdr, err := itr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &readError{name, err}
		}
		if err := checkRegular(hdr); err != nil {
			return invalid(name, err.Error())
		}
		if err := checkFileName(hdr.Name); err != nil {
			return invalid(name, "entry: "+err.Error())
		}
		path := fmt.Sprintf("data/%04d/%s", idx, hdr.Name)
		e := v.mf.entries[path]
		if e == nil {
			return invalid(path, "not listed in the manifest")
		}
		if e.used {
			return invalid(path, "appears twice in the payload")
		}
		e.used = true
		v.payloadSz += hdr.Size
		if v.opts.MaxPayloadSize > 0 && v.payloadSz > v.opts.MaxPayloadSize {
			return invalid(path, fmt.Sprintf("payload files exceed the limit of %d bytes", v.opts.MaxPayloadSize))
		}
		if err := v.file(path, hdr.Size, e); err != nil {
			return err
		}
		// The content went straight from the pipe; itr skips it on Next.
		ic.credit = hdr.Size
		p.Files = append(p.Files, File{Name: hdr.Name, Size: hdr.Size, SHA256: hex.EncodeToString(e.sum[:])})
		contentEnd, lastSize = ic.n+hdr.Size, hdr.Size
	}
	if err := tarEnd(ic, contentEnd, lastSize, v.buf); err != nil {
		return &readError{name, err}
	}
	return nil
}

// file hashes one payload file of size bytes, read straight from the
// pipe's buffers, while writing it to the sink.
func (v *verifier) file(path string, size int64, e *manifestEntry) error {
	var sink io.Writer
	if v.opts.PayloadSink != nil {
		w, err := v.opts.PayloadSink(path, size)
		if err != nil {
			return fmt.Errorf("%s: payload sink: %w", path, err)
		}
		sink = w
	}
	v.hash.Reset()
	for left := size; left > 0; {
		b, err := v.pipe.next(int(min(left, pipeChunkSize)))
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return &readError{path, err}
		}
		left -= int64(len(b))
		v.hash.Write(b)
		if sink != nil {
			if _, err := sink.Write(b); err != nil {
				return fmt.Errorf("%s: payload sink: %w", path, err)
			}
		}
		if err := v.ctx.Err(); err != nil {
			return err
		}
	}
	var sum [32]byte
	v.hash.Sum(sum[:0])
	if sum != e.sum {
		return invalid(path, "sha256 mismatch")
	}
	return nil
}
