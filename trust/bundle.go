package trust

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// maxBundleSize bounds how much of a ServerCertificate file is read. System
// CA bundles are about 250 KiB; 4 MiB leaves room for any sane bundle while
// keeping a wrong path (a disk image, /dev/zero) from exhausting memory.
const maxBundleSize = 4 << 20

// BlockProblem describes one PEM block of a certificate bundle that could not
// be used. Index counts PEM blocks from 1 in file order; Type is the block's
// PEM type ("" when the problem is text that is not PEM at all).
type BlockProblem struct {
	Index int
	Type  string
	Err   error
}

// Error names the block and what was wrong with it.
func (p BlockProblem) Error() string {
	if p.Type == "" {
		return fmt.Sprintf("block %d: %v", p.Index, p.Err)
	}
	return fmt.Sprintf("block %d (%s): %v", p.Index, p.Type, p.Err)
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (p BlockProblem) Unwrap() error { return p.Err }

// ParseBundle parses a PEM bundle of any number of certificates, as found in
// a ServerCertificate file. It returns every certificate it could parse, in
// file order, and one BlockProblem for every block it had to skip: a block
// that is not a CERTIFICATE, a certificate that does not parse, or trailing
// text that is not PEM. Parsing never stops at a bad block, so one broken
// certificate does not hide the others.
//
// ParseBundle never includes block contents in its problems, so a private key
// pasted into the bundle by mistake cannot end up in a log line.
func ParseBundle(data []byte) ([]*x509.Certificate, []BlockProblem) {
	var (
		certs    []*x509.Certificate
		problems []BlockProblem
		index    int
	)
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		index++
		if block.Type != "CERTIFICATE" {
			problems = append(problems, BlockProblem{Index: index, Type: block.Type,
				Err: fmt.Errorf("not a certificate; only CERTIFICATE blocks are used")})
			continue
		}
		if len(block.Headers) > 0 {
			problems = append(problems, BlockProblem{Index: index, Type: block.Type,
				Err: fmt.Errorf("certificate block has PEM headers; certificates must not be encrypted or annotated")})
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			problems = append(problems, BlockProblem{Index: index, Type: block.Type, Err: err})
			continue
		}
		certs = append(certs, cert)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		what := "text after the last PEM block is not PEM; it is ignored"
		switch {
		case bytes.Contains(rest, []byte("-----BEGIN")):
			what = "a PEM block is truncated or malformed; it is ignored"
		case index == 0:
			what = "no PEM block found; expected -----BEGIN CERTIFICATE-----"
		}
		problems = append(problems, BlockProblem{Index: index + 1, Err: fmt.Errorf("%s", what)})
	}
	return certs, problems
}
