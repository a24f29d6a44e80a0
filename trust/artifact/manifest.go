package artifact

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Size bounds of the members read into memory.
const (
	MaxVersionSize   = 4 << 10 // version member
	MaxManifestSize  = 1 << 20 // manifest member
	MaxSignatureSize = 4 << 10 // manifest.sig member (base64)
	MaxHeaderSize    = 4 << 20 // header.tar<sfx> member, compressed
	// MaxHeaderUncompressed bounds the decompressed header tar.
	MaxHeaderUncompressed = 16 << 20
	// MaxHeaderJSON bounds each JSON document inside the header.
	MaxHeaderJSON = 1 << 20
	// MaxTrailingZeros bounds the zero padding accepted after a tar's
	// end-of-archive marker (a tar record is 10 KiB; allow a few).
	MaxTrailingZeros = 64 << 10
	// maxFileName bounds a payload file name.
	maxFileName = 255
)

// manifestEntry is one manifest line.
type manifestEntry struct {
	path string
	sum  [32]byte
	used bool
}

// manifest is the parsed, signature-checked manifest.
type manifest struct {
	entries map[string]*manifestEntry
	order   []*manifestEntry // as written
	header  string           // the header.tar<sfx> path listed
}

// parseManifest parses the manifest strictly: every line is 64 lowercase
// hex digits, two spaces, an allowed path and "\n"; no duplicates; exactly
// one version and one header line. It must only be called on bytes whose
// signature has verified (or when running integrity-only).
func parseManifest(raw []byte) (*manifest, error) {
	m := &manifest{entries: make(map[string]*manifestEntry)}
	if len(raw) == 0 {
		return nil, invalid("manifest", "empty")
	}
	if raw[len(raw)-1] != '\n' {
		return nil, invalid("manifest", "last line does not end with a newline")
	}
	lineNo := 0
	for rest := raw; len(rest) > 0; {
		lineNo++
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i]
		rest = rest[i+1:]
		e, err := parseManifestLine(line)
		if err != nil {
			return nil, invalid("manifest", fmt.Sprintf("line %d: %s", lineNo, err))
		}
		if _, dup := m.entries[e.path]; dup {
			return nil, invalid("manifest", fmt.Sprintf("line %d: duplicate path %q", lineNo, e.path))
		}
		m.entries[e.path] = e
		m.order = append(m.order, e)
		switch {
		case e.path == "version":
		case strings.HasPrefix(e.path, "header.tar"):
			if m.header != "" {
				return nil, invalid("manifest", fmt.Sprintf("line %d: second header entry %q (first %q)", lineNo, e.path, m.header))
			}
			m.header = e.path
		}
	}
	if m.entries["version"] == nil {
		return nil, invalid("manifest", "no entry for version")
	}
	if m.header == "" {
		return nil, invalid("manifest", "no entry for the header")
	}
	return m, nil
}

// parseManifestLine parses one line without its newline.
func parseManifestLine(line []byte) (*manifestEntry, error) {
	if len(line) < 64+2+1 {
		return nil, fmt.Errorf("too short for %q", "<sha256>  <path>")
	}
	e := &manifestEntry{}
	for _, c := range line[:64] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, fmt.Errorf("checksum is not 64 lowercase hex digits")
		}
	}
	if _, err := hex.Decode(e.sum[:], line[:64]); err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	if line[64] != ' ' || line[65] != ' ' {
		return nil, fmt.Errorf("checksum is not followed by two spaces")
	}
	p := string(line[66:])
	if err := checkManifestPath(p); err != nil {
		return nil, err
	}
	e.path = p
	return e, nil
}

// checkManifestPath accepts version, header.tar<sfx> and data/NNNN/<name>.
func checkManifestPath(p string) error {
	switch p {
	case "version", "header.tar", "header.tar.gz", "header.tar.xz", "header.tar.zst":
		return nil
	}
	if _, _, err := splitDataPath(p); err != nil {
		return err
	}
	return nil
}

// splitDataPath splits "data/NNNN/<name>" into index and name.
func splitDataPath(p string) (int, string, error) {
	rest, ok := strings.CutPrefix(p, "data/")
	if !ok || len(rest) < 6 || rest[4] != '/' {
		return 0, "", fmt.Errorf("path %q is not version, header.tar[.gz|.xz|.zst] or data/NNNN/<file>", p)
	}
	idx, err := parseIndex(rest[:4])
	if err != nil {
		return 0, "", fmt.Errorf("path %q: %w", p, err)
	}
	name := rest[5:]
	if err := checkFileName(name); err != nil {
		return 0, "", fmt.Errorf("path %q: %w", p, err)
	}
	return idx, name, nil
}

// parseIndex parses exactly four decimal digits.
func parseIndex(s string) (int, error) {
	if len(s) != 4 {
		return 0, fmt.Errorf("index %q is not four digits", s)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("index %q is not four digits", s)
		}
	}
	n, err := strconv.Atoi(s)
	return n, err
}

// checkFileName accepts a bare payload file name: [A-Za-z0-9_.,-]+, not
// "." or "..", at most maxFileName bytes.
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > maxFileName {
		return fmt.Errorf("file name %q is not allowed", name)
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '-', c == '.', c == ',':
		default:
			return fmt.Errorf("file name %q has a character outside [A-Za-z0-9_.,-]", name)
		}
	}
	return nil
}
