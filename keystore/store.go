package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mender-agent/mender-agent/internal/atomicfile"
	"github.com/sirupsen/logrus"
)

// DefaultFileName is the key file name inside the data directory.
const DefaultFileName = "mender-agent.pem"

// Suffixes of the files kept beside the key.
const (
	// PreviousSuffix names the key replaced by Rotate: <path>.previous.
	PreviousSuffix = ".previous"
	// CorruptSuffix starts the name a corrupt generated key is moved to:
	// <path>.corrupt-<UTC time>.
	CorruptSuffix = ".corrupt-"
)

// timeSuffixFormat is the UTC time in names of kept files.
const timeSuffixFormat = "20060102T150405Z"

// Log field names used by this package.
const (
	fieldPath        = "path"
	fieldKeyType     = "key_type"
	fieldFingerprint = "fingerprint"
	fieldMode        = "mode"
	fieldMovedTo     = "moved_to"
	fieldPrevious    = "previous"
	fieldWanted      = "wanted_type"
)

// Options says where the device key lives and what LoadOrCreate and Rotate
// may do with it. The zero value of every field except Path is usable.
type Options struct {
	// Path is the key file, normally <data dir>/mender-agent.pem or
	// Security.AuthPrivateKey.
	Path string
	// Generate allows creating a key when none exists and replacing a
	// corrupt one. False means a static (provisioned) key: it is never
	// generated, moved or overwritten, and any problem is an error.
	Generate bool
	// Type is the key type to generate: "" (DefaultType, ed25519),
	// ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096. It never
	// changes an existing key.
	Type string
	// Passphrase decrypts an encrypted key file. When set, generated keys
	// are written encrypted with it (PKCS#8 PBES2, AES-256-CBC).
	Passphrase []byte
	// Logger receives warnings (permissions fixed) and errors (corrupt key
	// replaced). Nil discards them.
	Logger logrus.FieldLogger
	// Now is the clock used to name kept files. Nil means time.Now.
	Now func() time.Time
	// Rand is the entropy source for generation (see Generate). Nil means
	// crypto/rand.
	Rand io.Reader
}

func (o Options) logger() logrus.FieldLogger {
	if o.Logger != nil {
		return o.Logger
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) validate() (string, error) {
	if o.Path == "" {
		return "", errors.New("device key path is empty; set Security.AuthPrivateKey or the data directory")
	}
	if strings.HasPrefix(o.Path, "pkcs11:") {
		return "", fmt.Errorf("%w: %q is a PKCS#11 URI, not a file; the file key backend cannot use it", ErrUnsupportedKey, o.Path)
	}
	return normalizeType(o.Type)
}

// Load reads and parses the key at path without changing anything on disk:
// no generation, no permission fix-up, nothing moved. It is meant for
// inspection (show-key); the daemon uses LoadOrCreate. A missing file
// wraps ErrKeyNotFound.
func Load(path string, passphrase []byte) (*Key, error) {
	if _, err := (Options{Path: path}).validate(); err != nil {
		return nil, err
	}
	data, _, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(data, passphrase, path)
	if err != nil {
		return nil, fmt.Errorf("load device key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreate returns the device key at opts.Path, creating it if it is
// missing and opts.Generate allows. It is the daemon's, bootstrap's and
// provision's way to the key, and is idempotent: an existing key is always
// kept. On the way it:
//
//   - refuses a key directory writable by all users (ErrInsecureDir);
//   - with Generate, creates a missing data directory with mode 0700;
//   - changes a key file readable by group or others to 0600, with a
//     warning (an error if that is impossible);
//   - with Generate, moves an unparsable key aside to
//     <path>.corrupt-<UTC time>, logs an error (the device will appear as
//     a new pending device on the server) and generates a new key;
//   - writes new keys as PKCS#8 PEM, mode 0600, atomically.
//
// Without Generate (a static key) a missing file wraps both ErrKeyNotFound
// and ErrStaticKey, and nothing on disk except the mode is ever changed.
// Errors name the file and say what to do. LoadOrCreate is safe to call
// from several goroutines, but two processes creating the same key at once
// may each write one (the last rename wins); run one writer per key.
func LoadOrCreate(opts Options) (*Key, error) {
	typ, err := opts.validate()
	if err != nil {
		return nil, err
	}
	log := opts.logger().WithField(fieldPath, opts.Path)
	dir := filepath.Dir(opts.Path)
	if opts.Generate {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create key directory %s: %w", dir, err)
		}
	}
	if err := checkDir(dir, log); err != nil {
		return nil, err
	}

	data, mode, err := readKeyFile(opts.Path)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		if !opts.Generate {
			return nil, fmt.Errorf("load static device key: %w (%w); provide the file or unset Security.AuthPrivateKey", err, ErrStaticKey)
		}
		return create(opts, typ, log)
	case err != nil:
		return nil, err
	}
	if err := fixMode(opts.Path, mode, log); err != nil {
		return nil, err
	}
	k, err := parseKey(data, opts.Passphrase, opts.Path)
	if err == nil {
		if opts.Type != "" && k.Type() != typ {
			log.WithFields(logrus.Fields{fieldKeyType: k.Type(), fieldWanted: typ}).
				Warn("keeping the existing device key; the configured key type applies to new keys only (rotate with bootstrap --forcebootstrap)")
		}
		if opts.Generate {
			removeStaleTemps(opts.Path, log)
		}
		return k, nil
	}
	if !opts.Generate || !errors.Is(err, ErrCorruptKey) {
		if !opts.Generate && errors.Is(err, ErrCorruptKey) {
			return nil, fmt.Errorf("load static device key %s: %w; it is never replaced: restore or re-provision it", opts.Path, err)
		}
		return nil, fmt.Errorf("load device key %s: %w", opts.Path, err)
	}
	moved, mvErr := moveAside(opts.Path, opts.now())
	if mvErr != nil {
		return nil, fmt.Errorf("load device key %s: %w; moving it aside: %w", opts.Path, err, mvErr)
	}
	log.WithError(err).WithField(fieldMovedTo, moved).
		Error("device key is corrupt; moved it aside and generating a new key: the device will appear on the server as a new pending device and must be accepted (or preauthorized) again")
	return create(opts, typ, log)
}

// Rotate replaces the device key with a newly generated one (bootstrap
// --forcebootstrap). The replaced key file is kept, byte for byte, as
// <path>.previous; a .previous left by an earlier rotation is first
// renamed to <path>.previous-<UTC time>, so no key is ever deleted. The key
// path holds a complete key (old or new) at every moment. A static key
// (opts.Generate false) is never rotated: the error wraps ErrStaticKey.
// With no existing key, Rotate just creates one. The new key is a new
// identity: the device appears as a new pending device on the server
// unless it was preauthorized.
func Rotate(opts Options) (*Key, error) {
	typ, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if !opts.Generate {
		return nil, fmt.Errorf("rotate device key %s: %w; replace the provisioned file instead", opts.Path, ErrStaticKey)
	}
	log := opts.logger().WithField(fieldPath, opts.Path)
	dir := filepath.Dir(opts.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory %s: %w", dir, err)
	}
	if err := checkDir(dir, log); err != nil {
		return nil, err
	}
	old, _, err := readKeyFile(opts.Path)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return create(opts, typ, log)
	case err != nil:
		return nil, fmt.Errorf("rotate: %w", err)
	}
	removeStaleTemps(opts.Path, log)
	k, err := Generate(typ, opts.Rand)
	if err != nil {
		return nil, err
	}
	prev := opts.Path + PreviousSuffix
	if err := keepPrevious(prev, old, opts.now()); err != nil {
		return nil, fmt.Errorf("rotate device key %s: %w", opts.Path, err)
	}
	if err := save(k, opts); err != nil {
		return nil, fmt.Errorf("rotate device key %s: %w (the old key is still in place)", opts.Path, err)
	}
	k.info.Path = opts.Path
	log.WithFields(logrus.Fields{fieldKeyType: k.Type(), fieldFingerprint: k.Fingerprint(), fieldPrevious: prev}).
		Info("replaced the device key; the previous key is kept: the device will appear on the server as a new pending device unless the new key was preauthorized")
	return k, nil
}

// KeepPrevious copies the key file at path to path+PreviousSuffix before
// another backend (the TPM) replaces it, renaming a different earlier kept
// key out of the way as Rotate does, and returns where the key was kept.
// Nothing is deleted; the file at path is left in place.
func KeepPrevious(path string, now time.Time) (string, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("keep previous key: %w", err)
	}
	prev := path + PreviousSuffix
	if err := keepPrevious(prev, old, now); err != nil {
		return "", err
	}
	return prev, nil
}

// keepPrevious stores the current key's bytes at prev, first renaming a
// different earlier .previous out of the way.
func keepPrevious(prev string, old []byte, now time.Time) error {
	cur, err := os.ReadFile(prev)
	switch {
	case err == nil && bytes.Equal(cur, old):
		return nil // an interrupted rotation already kept this key
	case err == nil:
		dst, err := atomicfile.FreeName(prev + "-" + now.UTC().Format(timeSuffixFormat))
		if err != nil {
			return err
		}
		if err := os.Rename(prev, dst); err != nil {
			return fmt.Errorf("keep earlier previous key: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read previous key: %w", err)
	}
	if err := atomicfile.WriteFile(prev, old, 0o600); err != nil {
		return fmt.Errorf("keep previous key: %w", err)
	}
	return nil
}

// create generates a key and writes it to opts.Path.
func create(opts Options, typ string, log logrus.FieldLogger) (*Key, error) {
	removeStaleTemps(opts.Path, log)
	k, err := Generate(typ, opts.Rand)
	if err != nil {
		return nil, err
	}
	if err := save(k, opts); err != nil {
		return nil, err
	}
	k.info.Path = opts.Path
	log.WithFields(logrus.Fields{fieldKeyType: k.Type(), fieldFingerprint: k.Fingerprint()}).Info("generated a new device key")
	return k, nil
}

func save(k *Key, opts Options) error {
	data, err := encodePrivate(k, opts.Passphrase)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(opts.Path, data, 0o600); err != nil {
		return fmt.Errorf("save device key: %w", err)
	}
	return nil
}

// readKeyFile reads a key file of bounded size, refusing non-regular files.
func readKeyFile(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s does not exist", ErrKeyNotFound, path)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read device key: %w; check the file's owner and permissions", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("read device key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		what := "not a regular file"
		if fi.IsDir() {
			what = "a directory"
		}
		return nil, 0, fmt.Errorf("read device key %s: it is %s; the key path must name a PEM file", path, what)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read device key %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, 0, fmt.Errorf("read device key %s: larger than %d KiB, which no PEM private key is; check the path", path, maxKeyFileSize>>10)
	}
	return data, fi.Mode(), nil
}

// checkDir refuses a key directory writable by all users and warns about a
// group-writable one.
func checkDir(dir string, log logrus.FieldLogger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("key directory %s is not a directory", dir)
	}
	switch perm := fi.Mode().Perm(); {
	case perm&0o002 != 0:
		return fmt.Errorf("%w: %s has mode %s, so any user could replace the device key; run `chmod o-w %s` (0700 is recommended)",
			ErrInsecureDir, dir, perm, dir)
	case perm&0o020 != 0:
		log.WithFields(logrus.Fields{fieldPath: dir, fieldMode: perm.String()}).
			Warn("key directory is writable by its group; members could replace the device key (0700 is recommended)")
	}
	return nil
}

// fixMode makes a key file readable by its owner only.
func fixMode(path string, mode fs.FileMode, log logrus.FieldLogger) error {
	if mode.Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("device key %s has mode %s, readable by other users, and changing it to 0600 failed: %w; run `chmod 600 %s`",
			path, mode.Perm(), err, path)
	}
	log.WithField(fieldMode, mode.Perm().String()).
		Warn("device key file was accessible by other users; changed its mode to 0600 (anyone who read it can impersonate this device)")
	return nil
}

// moveAside renames a corrupt key to <path>.corrupt-<UTC time>, never over
// an existing file, and makes the rename durable.
func moveAside(path string, now time.Time) (string, error) {
	return atomicfile.MoveAside(path, path+CorruptSuffix+now.UTC().Format(timeSuffixFormat))
}

// removeStaleTemps deletes temporary files a crashed atomicfile.WriteFile
// left beside the key (".<name>.tmp-*"): they may hold private keys that
// were never put in place. Failures are only logged.
func removeStaleTemps(path string, log logrus.FieldLogger) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	for _, b := range []string{base, base + PreviousSuffix} {
		matches, err := filepath.Glob(filepath.Join(dir, "."+escapeGlob(b)+".tmp-*"))
		if err != nil {
			continue
		}
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				log.WithError(err).WithField(fieldPath, m).Warn("cannot remove a temporary file left by an interrupted key write")
				continue
			}
			log.WithField(fieldPath, m).Info("removed a temporary file left by an interrupted key write")
		}
	}
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}
