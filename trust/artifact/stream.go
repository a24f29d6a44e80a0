package artifact

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Pipeline sizing: decompression runs one chunk ahead of hashing on up to
// pipeChunks buffers of pipeChunkSize bytes, so memory stays constant.
// Every chunk handed over may wake the other goroutine (a futex call each
// way); 512 KiB chunks keep that near 1% of the CPU time of a gzip
// payload, where 256 KiB chunks cost about 3%, for 1 MiB more memory.
const (
	pipeChunkSize = 512 << 10
	pipeChunks    = 4
	// MaxDictSize bounds the xz dictionary and zstd window a payload or
	// header may ask for (xz -9 and zstd --ultra -22 need 64 MiB and
	// 128 MiB; mender-artifact's presets need at most 8 MiB).
	MaxDictSize = 64 << 20
)

// compression is a member suffix.
type compression string

const (
	compNone compression = ""
	compGzip compression = ".gz"
	compXz   compression = ".xz"
	compZstd compression = ".zst"
)

// Name is the mender-artifact name of the compression.
func (c compression) Name() string {
	switch c {
	case compGzip:
		return "gzip"
	case compXz:
		return "xz"
	case compZstd:
		return "zstd"
	}
	return "none"
}

// splitSuffix splits "<base>.tar<sfx>" and reports the compression.
func splitSuffix(name, base string) (compression, bool) {
	rest, ok := strings.CutPrefix(name, base+".tar")
	if !ok {
		return "", false
	}
	switch c := compression(rest); c {
	case compNone, compGzip, compXz, compZstd:
		return c, true
	}
	return "", false
}

// input wraps the caller's reader: it records the first read error that is
// not io.EOF (so I/O failures are not reported as invalid Artifacts) and
// whether the input has ended. It is used by one goroutine at a time.
type input struct {
	r   io.Reader
	n   int64
	err error
	eof bool
}

func (in *input) Read(p []byte) (int, error) {
	n, err := in.r.Read(p)
	in.n += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			in.eof = true
		} else if in.err == nil {
			in.err = err
		}
	}
	return n, err
}

// counter counts the bytes read through it, to find tar end markers.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// countingReader is a reader that knows how many bytes it has delivered.
type countingReader interface {
	io.Reader
	count() int64
}

func (c *counter) count() int64 { return c.n }

// tarEnd checks, after tr.Next returned io.EOF, that the archive ended with
// its two-block end marker and that at most MaxTrailingZeros zero bytes
// follow it. contentEnd is the count after the last entry's content.
func tarEnd(c countingReader, contentEnd int64, lastSize int64, buf []byte) error {
	pad := (512 - lastSize%512) % 512
	if c.count()-(contentEnd+pad) < 1024 {
		return errors.New("missing tar end-of-archive marker")
	}
	var zeros int64
	for {
		n, err := c.Read(buf)
		for i, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("non-zero data after the tar end-of-archive marker (byte %d)", c.count()-int64(n)+int64(i))
			}
		}
		zeros += int64(n)
		if zeros > MaxTrailingZeros {
			return fmt.Errorf("more than %d bytes of padding after the tar end-of-archive marker", MaxTrailingZeros)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// decompressors holds one reusable decoder of each kind for a Verify call.
type decompressors struct {
	br   *bufio.Reader
	gz   *gzip.Reader
	zstd *zstd.Decoder
}

func (d *decompressors) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}

// open returns a reader of the decompressed stream of member r. The
// returned reader fails if compressed data follow the end of the stream.
func (d *decompressors) open(c compression, r io.Reader) (io.Reader, error) {
	if c == compNone {
		return r, nil
	}
	if d.br == nil {
		d.br = bufio.NewReaderSize(r, 256<<10)
	} else {
		d.br.Reset(r)
	}
	var dr io.Reader
	switch c {
	case compGzip:
		if d.gz == nil {
			gz, err := gzip.NewReader(d.br)
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			d.gz = gz
		} else if err := d.gz.Reset(d.br); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		dr = d.gz
	case compXz:
		if err := checkXzDict(d.br); err != nil {
			return nil, err
		}
		xr, err := xz.NewReader(d.br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		dr = xr
	case compZstd:
		if d.zstd == nil {
			zr, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(MaxDictSize),
				zstd.WithDecoderMaxMemory(1<<62))
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			d.zstd = zr
		}
		if err := d.zstd.Reset(d.br); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		dr = d.zstd
	}
	return &streamEnd{r: dr, tail: d.br, name: c.Name()}, nil
}

// streamEnd reports io.EOF only when the decompressor ended and the member
// has no further bytes.
type streamEnd struct {
	r    io.Reader
	tail io.Reader
	name string
}

func (s *streamEnd) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if errors.Is(err, io.EOF) {
		var one [1]byte
		if m, _ := io.ReadFull(s.tail, one[:]); m != 0 {
			return n, fmt.Errorf("%s: data after the end of the compressed stream", s.name)
		}
		return n, io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("%s: compressed stream truncated or followed by other data: %w", s.name, err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), s.name+":") {
		err = fmt.Errorf("%s: %w", s.name, err)
	}
	return n, err
}

// xzDictOffset finds the LZMA2 dictionary-size byte in the first block
// header of an xz stream whose start is b. It returns the offset of that
// byte and the block header's length, or ok false if b is too short or not
// shaped as expected (the decoder then reports the problem itself).
func xzDictOffset(b []byte) (off, hdrLen int, ok bool) {
	// Stream header (12 bytes), then the block header: size byte, flags,
	// optional sizes, filter flags (id 0x21 LZMA2, props size 1, dict byte),
	// padding, CRC32.
	if len(b) < 13 || b[12] == 0 {
		return 0, 0, false
	}
	hdrLen = (int(b[12]) + 1) * 4
	if len(b) < 12+hdrLen {
		return 0, 0, false
	}
	h := b[12 : 12+hdrLen]
	flags := h[1]
	i := 2
	skipVarint := func() bool {
		for ; i < len(h); i++ {
			if h[i]&0x80 == 0 {
				i++
				return true
			}
		}
		return false
	}
	if flags&0x40 != 0 && !skipVarint() {
		return 0, 0, false
	}
	if flags&0x80 != 0 && !skipVarint() {
		return 0, 0, false
	}
	for f := 0; f < int(flags&3)+1 && i+2 < len(h); f++ {
		if h[i] == 0x21 && h[i+1] == 1 {
			return 12 + i + 2, hdrLen, true
		}
		i++ // filter id (single-byte ids only: all xz filters use them)
		if !skipVarint() || i > len(h) {
			return 0, 0, false
		}
		i += int(h[i-1])
	}
	return 0, 0, false
}

// xzDictSize decodes an LZMA2 dictionary-size byte.
func xzDictSize(d byte) (uint64, error) {
	if d > 40 {
		return 0, errors.New("xz: invalid LZMA2 dictionary size")
	}
	if d == 40 {
		return 1<<32 - 1, nil
	}
	return uint64(2|(d&1)) << (d/2 + 11), nil
}

// checkXzDict peeks at the xz stream and block headers and refuses an LZMA2
// dictionary larger than MaxDictSize before the decoder allocates it.
func checkXzDict(br *bufio.Reader) error {
	b, _ := br.Peek(12 + 1024)
	off, _, ok := xzDictOffset(b)
	if !ok {
		return nil
	}
	dict, err := xzDictSize(b[off])
	if err != nil {
		return err
	}
	if dict > MaxDictSize {
		return fmt.Errorf("xz: dictionary of %d MiB exceeds the limit of %d MiB", dict>>20, MaxDictSize>>20)
	}
	return nil
}

// shrinkXzDict returns a copy of the xz stream raw whose first block asks
// for a dictionary of at most limit bytes, with the block header's CRC32
// fixed up. The header member is decoded this way: its decompressed size is
// bounded by limit, so no back-reference can reach further, and the decoder
// does not allocate the 64 MiB dictionary mender-artifact declares.
func shrinkXzDict(raw []byte, limit uint64) []byte {
	off, hdrLen, ok := xzDictOffset(raw)
	if !ok {
		return raw
	}
	dict, err := xzDictSize(raw[off])
	if err != nil || dict <= limit {
		return raw
	}
	d := raw[off]
	for d > 0 {
		if s, _ := xzDictSize(d); s <= limit {
			break
		}
		d--
	}
	out := bytes.Clone(raw)
	out[off] = d
	crc := crc32.ChecksumIEEE(out[12 : 12+hdrLen-4])
	binary.LittleEndian.PutUint32(out[12+hdrLen-4:], crc)
	return out
}

// pipe runs a decompressor in its own goroutine, one or more chunks ahead
// of the consumer, over a fixed pool of buffers. Read is called by one
// goroutine; stop must be called before the pipe is dropped and waits for
// the producer goroutine to exit.
type pipe struct {
	full chan []byte
	free chan []byte
	quit chan struct{}
	done chan struct{}
	err  error // producer's final error; read after full is closed
	cur  []byte
	off  int
}

func newPipe(bufs [][]byte) *pipe {
	p := &pipe{
		full: make(chan []byte, len(bufs)),
		free: make(chan []byte, len(bufs)),
	}
	for _, b := range bufs {
		p.free <- b
	}
	return p
}

// start begins producing from src. The producer owns src until the pipe
// reports the end of the stream or stop returns.
func (p *pipe) start(ctx context.Context, src io.Reader) {
	p.quit = make(chan struct{})
	p.done = make(chan struct{})
	p.err = nil
	go func() {
		defer close(p.done)
		defer close(p.full)
		for {
			select {
			case <-p.quit:
				p.err = errors.New("pipe stopped")
				return
			default:
			}
			var buf []byte
			select {
			case buf = <-p.free:
			case <-p.quit:
				p.err = errors.New("pipe stopped")
				return
			case <-ctx.Done():
				p.err = ctx.Err()
				return
			}
			buf = buf[:cap(buf)]
			n, err := fill(src, buf)
			if n > 0 {
				p.full <- buf[:n]
			} else {
				p.free <- buf
			}
			if err != nil {
				p.err = err
				return
			}
		}
	}()
}

// fill reads until buf is full or src fails; it passes errors through
// unchanged (unlike io.ReadFull, which hides a source's ErrUnexpectedEOF).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Read returns decompressed bytes; at the end of the stream it returns the
// producer's final error (io.EOF on success).
func (p *pipe) Read(b []byte) (int, error) {
	c, err := p.next(len(b))
	return copy(b, c), err
}

// next returns up to max decompressed bytes without copying them. The
// slice is valid until the following call of next, Read or stop.
func (p *pipe) next(max int) ([]byte, error) {
	for p.off == len(p.cur) {
		if p.cur != nil {
			p.free <- p.cur
			p.cur = nil
		}
		buf, ok := <-p.full
		if !ok {
			return nil, p.err
		}
		p.cur, p.off = buf, 0
	}
	n := min(max, len(p.cur)-p.off)
	c := p.cur[p.off : p.off+n]
	p.off += n
	return c, nil
}

// innerTar is what an inner (payload) tar.Reader reads from. File contents
// are hashed straight from the pipe's buffers, without a copy; credit is
// the number of such bytes the tar.Reader still believes unread and will
// skip on its next Next, and Read hands them out without touching the
// buffer (the tar.Reader discards them).
type innerTar struct {
	p      *pipe
	n      int64
	credit int64
}

func (s *innerTar) Read(b []byte) (int, error) {
	if s.credit > 0 {
		n := int(min(int64(len(b)), s.credit))
		s.credit -= int64(n)
		s.n += int64(n)
		return n, nil
	}
	n, err := s.p.Read(b)
	s.n += int64(n)
	return n, err
}

func (s *innerTar) count() int64 { return s.n }

// stop ends the producer and waits for it, then returns every buffer to
// the pool so the pipe can be started again.
func (p *pipe) stop() {
	if p.done == nil {
		return
	}
	close(p.quit)
	for buf := range p.full { // drains until the producer closes full
		p.free <- buf
	}
	<-p.done
	if p.cur != nil {
		p.free <- p.cur
		p.cur = nil
	}
	p.off = 0
	p.full = make(chan []byte, cap(p.free))
	p.done = nil
}

// tarReason turns a tar error into a rejection reason.
func tarReason(err error) string {
	if err == io.ErrUnexpectedEOF { //nolint:errorlint // only the bare sentinel means "no more bytes"
		return "truncated"
	}
	if err == tar.ErrHeader { //nolint:errorlint // wrapped ones carry their own context
		return "corrupt tar header"
	}
	return err.Error()
}
