// Package atomicfile writes files so that a crash or power cut at any moment
// leaves either the old content or the complete new content at the path,
// never a mix or a truncated file.
//
// It owns that write protocol (temporary file in the target directory,
// write, chmod, fsync, close, rename over the target, fsync the directory)
// and the rule for moving a file aside without overwriting anything. It is
// shared by keystore, tpm and the token cache. It imports the standard
// library only and must not import any other package of this module.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data, giving the file mode perm
// (for example 0o600 for secrets). The temporary file lives in the same
// directory under a unique name and is removed on any failure, so a failed
// write never disturbs an existing file at path.
//
// WriteFile is safe for concurrent use on different paths; concurrent writes
// to one path leave one of the complete contents.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if fi, statErr := os.Lstat(path); statErr == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("write %s: not a regular file (%s); remove or move it first", path, fi.Mode().Type())
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that a preceding rename or create in it is
// durable. File systems that cannot sync directories are tolerated.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// FreeName returns name if nothing exists there, else name-N for the first
// N that is free: files kept as evidence or history are never overwritten.
func FreeName(name string) (string, error) {
	cand := name
	for i := 1; i < 1000; i++ {
		if _, err := os.Lstat(cand); errors.Is(err, fs.ErrNotExist) {
			return cand, nil
		} else if err != nil {
			return "", err
		}
		cand = fmt.Sprintf("%s-%d", name, i)
	}
	return "", fmt.Errorf("no free file name like %s", name)
}

// MoveAside renames path to dst, or to the FreeName of dst when dst is
// taken, and makes the rename durable. It returns the name used.
func MoveAside(path, dst string) (string, error) {
	dst, err := FreeName(dst)
	if err != nil {
		return "", err
	}
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return dst, nil
}
