package keystore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxPassphraseSize bounds what ReadPassphrase reads.
const maxPassphraseSize = 4 << 10

// ReadPassphrase reads a key passphrase the way --passphrase-file takes it:
// arg is a file name, or "-" for stdin. Like OpenSSL's file: and stdin
// sources, the passphrase is the first line, without its line ending
// ("\n" or "\r\n"); the rest is ignored. An empty passphrase is an error.
// Errors name the file but never contain the passphrase.
func ReadPassphrase(arg string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	name := arg
	switch arg {
	case "":
		return nil, errors.New("passphrase file name is empty; give a file, or - for stdin")
	case "-":
		if stdin == nil {
			return nil, errors.New("read passphrase from stdin: no stdin")
		}
		r, name = stdin, "stdin"
	default:
		f, err := os.Open(arg)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxPassphraseSize), maxPassphraseSize).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read passphrase from %s: %w", name, err)
	}
	if err != nil && len(line) == maxPassphraseSize {
		return nil, fmt.Errorf("read passphrase from %s: first line longer than %d bytes", name, maxPassphraseSize)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("passphrase from %s is empty", name)
	}
	return line, nil
}
