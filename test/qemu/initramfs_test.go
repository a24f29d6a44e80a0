package qemu

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// archive is an initramfs tree held in memory and written as a newc cpio
// archive. Paths are relative to the root ("etc/passwd"); parents are
// created with mode 0755. The root itself is always mode 0755: a 0700 root
// (what a temporary directory gets) keeps dbus-daemon, once it has dropped
// to messagebus, out of /etc/dbus-1.
type archive struct {
	entries map[string]*cpioEntry
}

// cpioEntry is one file, directory, symlink or device of an archive.
type cpioEntry struct {
	mode uint32 // type bits and permissions, as in st_mode
	data []byte // file contents or symlink target
	rdev [2]uint32
}

// File type bits of st_mode.
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

func newArchive() *archive {
	return &archive{entries: map[string]*cpioEntry{".": {mode: modeDir | 0o755}}}
}

func cleanPath(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// mkdirAll creates p and its parents with mode 0755 unless they exist.
func (a *archive) mkdirAll(p string) {
	p = cleanPath(p)
	if p == "." {
		return
	}
	if _, ok := a.entries[p]; ok {
		return
	}
	a.mkdirAll(path.Dir(p))
	a.entries[p] = &cpioEntry{mode: modeDir | 0o755}
}

// dir creates directory p with permissions perm.
func (a *archive) dir(p string, perm fs.FileMode) {
	p = cleanPath(p)
	a.mkdirAll(path.Dir(p))
	a.entries[p] = &cpioEntry{mode: modeDir | uint32(perm.Perm())}
}

// file adds a regular file, replacing any entry at p.
func (a *archive) file(p string, perm fs.FileMode, data []byte) {
	p = cleanPath(p)
	a.mkdirAll(path.Dir(p))
	a.entries[p] = &cpioEntry{mode: modeFile | uint32(perm.Perm()), data: data}
}

// symlink adds a symbolic link at p pointing to target.
func (a *archive) symlink(p, target string) {
	p = cleanPath(p)
	a.mkdirAll(path.Dir(p))
	a.entries[p] = &cpioEntry{mode: modeSymlink | 0o777, data: []byte(target)}
}

// charDev adds a character device node.
func (a *archive) charDev(p string, perm fs.FileMode, major, minor uint32) {
	p = cleanPath(p)
	a.mkdirAll(path.Dir(p))
	a.entries[p] = &cpioEntry{mode: modeCharDev | uint32(perm.Perm()), rdev: [2]uint32{major, minor}}
}

// names returns the entry paths in archive order: every directory before
// what it holds.
func (a *archive) names() []string {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return lessPath(names[i], names[j]) })
	return names
}

// lessPath orders paths component by component, so a directory sorts
// right before its contents ("." is the root and sorts first).
func lessPath(a, b string) bool {
	if a == "." || b == "." {
		return a == "." && b != "."
	}
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// writeTo writes the archive in the "newc" cpio format the kernel unpacks:
// owner root, mtime 0, one inode per entry, then the TRAILER!!! entry.
func (a *archive) writeTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	ino := uint32(1)
	for _, name := range a.names() {
		e := a.entries[name]
		nlink := uint32(1)
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		if err := writeCPIOEntry(cw, name, ino, e.mode, nlink, e.rdev, e.data); err != nil {
			return cw.n, err
		}
		ino++
	}
	if err := writeCPIOEntry(cw, "TRAILER!!!", 0, 0, 1, [2]uint32{}, nil); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func writeCPIOEntry(w io.Writer, name string, ino, mode, nlink uint32, rdev [2]uint32, data []byte) error {
	var b bytes.Buffer
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name)+1, 0)
	b.WriteString(name)
	b.WriteByte(0)
	pad4(&b, b.Len())
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write cpio entry %s: %w", name, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("write cpio entry %s: %w", name, err)
	}
	if n := len(data) % 4; n != 0 {
		if _, err := w.Write(make([]byte, 4-n)); err != nil {
			return fmt.Errorf("write cpio entry %s: %w", name, err)
		}
	}
	return nil
}

func pad4(b *bytes.Buffer, n int) {
	if r := n % 4; r != 0 {
		b.Write(make([]byte, 4-r))
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// sysrootFile resolves p (absolute, as the guest sees it) inside sysroot,
// following symlinks, absolute ones relative to sysroot. It returns the host
// path of the regular file.
func sysrootFile(sysroot, p string) (string, error) {
	cur := path.Clean("/" + p)
	for range 40 {
		host := filepath.Join(sysroot, filepath.FromSlash(cur))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", fmt.Errorf("sysroot %s: %s: %w", sysroot, cur, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("sysroot %s: %s is not a regular file", sysroot, cur)
			}
			return host, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", fmt.Errorf("sysroot %s: %w", sysroot, err)
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(cur), target)
		}
		cur = path.Clean(target)
	}
	return "", fmt.Errorf("sysroot %s: %s: too many levels of symbolic links", sysroot, p)
}

// libDirs are the directories the dynamic loader searches without an
// ld.so.cache, relative to the root, for the multiarch triplets found in
// sysroot.
func libDirs(sysroot string) []string {
	var dirs []string
	for _, base := range []string{"lib", "usr/lib"} {
		matches, _ := filepath.Glob(filepath.Join(sysroot, base, "*-linux-gnu*"))
		for _, m := range matches {
			dirs = append(dirs, base+"/"+filepath.Base(m))
		}
	}
	return append(dirs, "lib", "usr/lib")
}

// sharedClosure returns what the dynamically linked program at guest path
// bin needs to run, as guest path → host path: the program itself, its
// ELF interpreter and every DT_NEEDED library, recursively, each found in
// sysroot the way the loader would find it.
func sharedClosure(sysroot, bin string) (map[string]string, error) {
	files := map[string]string{}
	dirs := libDirs(sysroot)
	var visit func(guest string) error
	visit = func(guest string) error {
		if _, ok := files[guest]; ok {
			return nil
		}
		host, err := sysrootFile(sysroot, guest)
		if err != nil {
			return err
		}
		files[guest] = host
		f, err := elf.Open(host)
		if err != nil {
			return fmt.Errorf("sysroot %s: %s: %w", sysroot, guest, err)
		}
		defer f.Close()
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("sysroot %s: %s: %w", sysroot, guest, err)
		}
	next:
		for _, lib := range needed {
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(sysroot, d, lib)); err == nil {
					if err := visit("/" + d + "/" + lib); err != nil {
						return err
					}
					continue next
				}
			}
			return fmt.Errorf("sysroot %s: %s needs %s, which is in none of %v (add its package to scripts/qemu-prepare.sh)", sysroot, guest, lib, dirs)
		}
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return fmt.Errorf("sysroot %s: %s: interpreter: %w", sysroot, guest, err)
			}
			return visit(strings.TrimRight(string(b), "\x00"))
		}
		return nil
	}
	if err := visit(bin); err != nil {
		return nil, err
	}
	return files, nil
}

// kmod is a kernel module file and the modules it depends on.
type kmod struct {
	name    string
	path    string
	depends []string
}

// parseModinfo parses the NUL-separated key=value strings of .modinfo.
func parseModinfo(p string, data []byte) (kmod, error) {
	m := kmod{path: p, name: strings.TrimSuffix(filepath.Base(p), ".ko")}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.name = v
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.depends = append(m.depends, d)
				}
			}
		}
	}
	return m, nil
}

// errModuleCycle reports modules that depend on each other.
var errModuleCycle = errors.New("kernel modules depend on each other")

// loadOrder orders mods so every module comes after the modules it
// depends on, keeping the given order otherwise. A dependency that is not
// in mods is an error naming both modules.
func loadOrder(mods []kmod) ([]kmod, error) {
	byName := map[string]kmod{}
	for _, m := range mods {
		byName[m.name] = m
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []kmod
	var visit func(m kmod) error
	visit = func(m kmod) error {
		switch state[m.name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", errModuleCycle, m.name)
		}
		state[m.name] = visiting
		for _, d := range m.depends {
			dep, ok := byName[d]
			if !ok {
				return fmt.Errorf("kernel module %s depends on %s, which was not extracted (add it to scripts/qemu-prepare.sh)", m.name, d)
			}
			if err := visit(dep); err != nil {
				return err
			}
		}
		state[m.name] = done
		out = append(out, m)
		return nil
	}
	for _, m := range mods {
		if err := visit(m); err != nil {
			return nil, err
		}
	}
	return out, nil
}
