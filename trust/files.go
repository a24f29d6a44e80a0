package trust

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// fileStamp identifies one version of a file cheaply: a replaced file (new
// inode) or a rewritten one (new size or modification time) gets a new
// stamp. A missing file has the zero stamp with err set.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    int64
	missing  bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{missing: true}
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(sys.Dev), uint64(sys.Ino) //nolint:unconvert // widths differ across GOARCH
	}
	return st
}

// readLimited reads path, refusing files larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes; is this the right file?", limit)
	}
	return data, nil
}

// isNotExist reports whether err means the file is missing.
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
