package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"
)

// DataDirEnv is the environment variable that moves the identity script's
// base directory, as the Mender clients honour it.
const DataDirEnv = "MENDER_DATA_DIR"

// DefaultDataDir is the base directory when DataDirEnv is unset.
const DefaultDataDir = "/usr/share/mender"

// DefaultScript returns the identity script's path:
// $MENDER_DATA_DIR/identity/mender-device-identity, with MENDER_DATA_DIR
// defaulting to /usr/share/mender. It reads the environment on each call.
func DefaultScript() string {
	dir := os.Getenv(DataDirEnv)
	if dir == "" {
		dir = DefaultDataDir
	}
	return filepath.Join(dir, "identity", "mender-device-identity")
}

// ErrNoData means the script succeeded but printed no key=value line.
var ErrNoData = errors.New("no identity data")

// ErrMalformed means a line of the script's output is not key=value.
var ErrMalformed = errors.New("malformed identity data")

// Data is a device's identity: each key with its values in output order.
// A key with one value is serialized as a JSON string, a key with several as
// an array of strings. Data is a plain map; it is safe for concurrent reads.
type Data map[string][]string

// maxQuote bounds how much of an offending line an error quotes.
const maxQuote = 120

// Parse turns identity script output into Data. Lines are split on the first
// '='; the value is kept byte for byte (no trimming, so spaces and '\r'
// survive, as with the Mender clients); empty lines are skipped; a repeated
// key appends to the key's values. A non-empty line without '=' or with an
// empty key, or output with no data at all, is an error.
func Parse(out []byte) (Data, error) {
	d := Data{}
	for i, line := range bytes.Split(out, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		key, val, ok := bytes.Cut(line, []byte{'='})
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: line %d has no '=': %s", ErrMalformed, i+1, quote(line))
		case len(key) == 0:
			return nil, fmt.Errorf("%w: line %d has an empty key: %s", ErrMalformed, i+1, quote(line))
		case !utf8.Valid(line):
			// JSON would turn every invalid byte into U+FFFD, so two
			// different keys could collapse into one and the identity
			// would silently change.
			return nil, fmt.Errorf("%w: line %d is not valid UTF-8: %s; print text, or encode binary values (for example in hex)", ErrMalformed, i+1, quote(line))
		}
		k := string(key)
		d[k] = append(d[k], string(val))
	}
	if len(d) == 0 {
		return nil, fmt.Errorf("%w: the script printed no key=value line", ErrNoData)
	}
	return d, nil
}

// quote returns a Go-quoted prefix of b, marking truncation.
func quote(b []byte) string {
	if len(b) <= maxQuote {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:maxQuote])) + "..."
}

// Keys returns the keys in sorted (byte) order.
func (d Data) Keys() []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// JSON returns the canonical serialization that goes into id_data: a
// compact JSON object with keys in byte order, a single value as a string
// and repeated values as an array of strings, e.g.
// {"cpuid":"1","mac":["a","b"]}. It matches what Mender 3.x produced.
func (d Data) JSON() string {
	obj := make(map[string]any, len(d))
	for k, vs := range d {
		if len(vs) == 1 {
			obj[k] = vs[0]
		} else {
			obj[k] = vs
		}
	}
	// encoding/json sorts map keys; marshalling strings cannot fail.
	b, err := json.Marshal(obj)
	if err != nil {
		panic("identity: marshal string map: " + err.Error())
	}
	return string(b)
}
