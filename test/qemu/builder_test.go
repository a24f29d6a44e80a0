package qemu

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testenv"
)

func TestArchiveReadsBackWithCpio(t *testing.T) {
	cpio := testenv.LookPath(t, "cpio")
	a := newArchive()
	a.file("etc/mender/mender.conf", 0o600, []byte(`{"ServerURL":"https://server.test"}`))
	a.file("init", 0o755, []byte("#!/bin/sh\n"))
	a.dir("var/lib/mender", 0o700)
	a.symlink("var/run", "/run")
	a.charDev("dev/console", 0o600, 5, 1)
	a.file("odd", 0o644, []byte("abcde")) // not a multiple of 4: needs padding

	var buf bytes.Buffer
	n, err := a.writeTo(&buf)
	require.NoError(t, err)
	assert.Equal(t, int64(buf.Len()), n)
	assert.Zero(t, buf.Len()%4, "newc entries are 4-byte aligned")

	list := exec.Command(cpio, "-t", "-v", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.Output()
	require.NoError(t, err)
	modes := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		require.GreaterOrEqual(t, len(f), 2, line)
		name := f[len(f)-1]
		if strings.HasPrefix(f[0], "l") {
			name = f[len(f)-3] // "name -> target"
		}
		modes[name] = f[0]
	}
	want := map[string]string{
		".":                      "drwxr-xr-x",
		"etc":                    "drwxr-xr-x",
		"etc/mender":             "drwxr-xr-x",
		"etc/mender/mender.conf": "-rw-------",
		"init":                   "-rwxr-xr-x",
		"var/lib/mender":         "drwx------",
		"var/run":                "lrwxrwxrwx",
		"dev/console":            "crw-------",
		"odd":                    "-rw-r--r--",
	}
	for name, mode := range want {
		assert.Equal(t, mode, modes[name], "mode of %s", name)
	}

	for name, content := range map[string]string{
		"etc/mender/mender.conf": `{"ServerURL":"https://server.test"}`,
		"odd":                    "abcde",
	} {
		extract := exec.Command(cpio, "-i", "--quiet", "--to-stdout", name)
		extract.Stdin = bytes.NewReader(buf.Bytes())
		got, err := extract.Output()
		require.NoError(t, err)
		assert.Equal(t, content, string(got), name)
	}
}

func TestArchiveOrdersDirectoriesFirst(t *testing.T) {
	a := newArchive()
	a.file("a/b/c", 0o644, nil)
	a.file("a-b", 0o644, nil)
	a.file("a/a", 0o644, nil)
	a.file("b", 0o644, nil)
	assert.Equal(t, []string{".", "a", "a/a", "a/b", "a/b/c", "a-b", "b"}, a.names())
}

func TestLessPath(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{name: "root first", a: ".", b: "a", want: true},
		{name: "root not after itself", a: ".", b: ".", want: false},
		{name: "nothing before root", a: "a", b: ".", want: false},
		{name: "parent before child", a: "a", b: "a/b", want: true},
		{name: "child after parent", a: "a/b", b: "a", want: false},
		{name: "component order, not byte order", a: "a/z", b: "a-b", want: true},
		{name: "siblings", a: "a/b", b: "a/c", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, lessPath(tt.a, tt.b))
		})
	}
}

func TestParseModinfo(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    string
		depends []string
	}{
		{name: "name and depends", data: "license=GPL\x00depends=mbcache,jbd2,crc16\x00name=ext4\x00", want: "ext4", depends: []string{"mbcache", "jbd2", "crc16"}},
		{name: "no dependencies", data: "depends=\x00name=virtio\x00", want: "virtio"},
		{name: "name from the file when missing", data: "license=GPL\x00", want: "e1000"},
		{name: "padding between strings", data: "\x00\x00depends=failover\x00\x00name=net_failover\x00", want: "net_failover", depends: []string{"failover"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseModinfo("/x/e1000.ko", []byte(tt.data))
			require.NoError(t, err)
			assert.Equal(t, tt.want, m.name)
			assert.Equal(t, tt.depends, m.depends)
		})
	}
}

func TestLoadOrder(t *testing.T) {
	mod := func(name string, deps ...string) kmod { return kmod{name: name, depends: deps} }
	names := func(ms []kmod) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.name)
		}
		return out
	}
	tests := []struct {
		name    string
		mods    []kmod
		want    []string
		wantErr string
	}{
		{
			name: "dependencies first",
			mods: []kmod{mod("ext4", "mbcache", "jbd2", "crc16"), mod("virtio_net", "net_failover"), mod("net_failover", "failover"), mod("failover"), mod("crc16"), mod("jbd2"), mod("mbcache")},
			want: []string{"mbcache", "jbd2", "crc16", "ext4", "failover", "net_failover", "virtio_net"},
		},
		{name: "order kept without dependencies", mods: []kmod{mod("b"), mod("a")}, want: []string{"b", "a"}},
		{name: "missing dependency", mods: []kmod{mod("ext4", "jbd2")}, wantErr: "kernel module ext4 depends on jbd2, which was not extracted"},
		{name: "cycle", mods: []kmod{mod("a", "b"), mod("b", "a")}, wantErr: errModuleCycle.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadOrder(tt.mods)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, names(got))
		})
	}
}

func TestSysrootFile(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "x"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib64"), 0o755))
	loader := filepath.Join(root, "lib", "x", "ld.so")
	require.NoError(t, os.WriteFile(loader, []byte("loader"), 0o755))
	// Absolute links point into the sysroot, never at the host.
	require.NoError(t, os.Symlink("/lib/x/ld.so", filepath.Join(root, "lib64", "ld.so")))
	require.NoError(t, os.Symlink("ld.so", filepath.Join(root, "lib", "x", "libc.so")))
	require.NoError(t, os.Symlink("/lib/loop", filepath.Join(root, "lib", "loop")))
	require.NoError(t, os.Symlink("/lib/x", filepath.Join(root, "lib", "dir")))

	tests := []struct {
		name    string
		path    string
		want    string
		wantErr string
	}{
		{name: "regular file", path: "/lib/x/ld.so", want: loader},
		{name: "absolute link", path: "/lib64/ld.so", want: loader},
		{name: "relative link", path: "/lib/x/libc.so", want: loader},
		{name: "missing", path: "/lib/none.so", wantErr: "no such file"},
		{name: "loop", path: "/lib/loop", wantErr: "too many levels of symbolic links"},
		{name: "directory", path: "/lib/dir", wantErr: "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sysrootFile(root, tt.path)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSharedClosureOfHostDbusDaemon(t *testing.T) {
	bin := testenv.LookPath(t, "dbus-daemon")
	files, err := sharedClosure("/", bin)
	require.NoError(t, err)
	base := map[string]bool{}
	for guest, host := range files {
		base[path.Base(guest)] = true
		fi, err := os.Stat(host)
		require.NoError(t, err)
		assert.True(t, fi.Mode().IsRegular(), "%s resolves to a regular file", guest)
	}
	assert.True(t, base["libdbus-1.so.3"], "libdbus is in the closure: %v", files)
	assert.True(t, base["libc.so.6"], "libc is in the closure (a NEEDED of a NEEDED): %v", files)
	var interp bool
	for guest := range files {
		interp = interp || strings.HasPrefix(path.Base(guest), "ld-linux")
	}
	assert.True(t, interp, "the ELF interpreter is in the closure: %v", files)
}

func TestSharedClosureNamesMissingLibrary(t *testing.T) {
	bin := testenv.LookPath(t, "dbus-daemon")
	root := t.TempDir()
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "usr", "bin", "dbus-daemon"), data, 0o755))
	_, err = sharedClosure(root, "/usr/bin/dbus-daemon")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "add its package to scripts/qemu-prepare.sh")
}
