package artifact

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/stretchr/testify/require"
)

// benchSizeEnv sets the payload size of the benchmarks ("1GiB", "256MiB",
// "16MiB" or a byte count); the default keeps plain runs small.
const benchSizeEnv = "MENDER_AGENT_BENCH_SIZE"

func benchSize(b *testing.B) int64 {
	s := os.Getenv(benchSizeEnv)
	if s == "" {
		return 16 << 20
	}
	mult := int64(1)
	for _, u := range []struct {
		sfx string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v, ok := strings.CutSuffix(s, u.sfx); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a size such as 1GiB, 256MiB or 1048576", benchSizeEnv, os.Getenv(benchSizeEnv))
	}
	return n * mult
}

// writeFile writes r to a new file in dir.
func writeFile(b *testing.B, dir, name string, r io.Reader) string {
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	require.NoError(b, err)
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = io.Copy(w, r)
	require.NoError(b, err)
	require.NoError(b, w.Flush())
	require.NoError(b, f.Close())
	return p
}

// BenchmarkVerify verifies generated Artifacts from disk: random data
// (stored by gzip, so hashing dominates) and compressible text (so
// decompression dominates). MB/s is payload bytes.
func BenchmarkVerify(b *testing.B) {
	size := benchSize(b)
	ec, _ := ecKeys(b)
	for _, c := range []struct {
		data, comp string
		level      int
	}{
		{"random", "gzip", 6}, {"random", "none", 0}, {"random", "zstd", 0},
		{"compressible", "gzip", 6}, {"compressible", "xz", 0}, {"compressible", "zstd", 0},
	} {
		b.Run(c.data+"-"+c.comp, func(b *testing.B) {
			a := genArtifact(ec.priv, c.comp, c.level, size, c.data == "compressible")
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(a.Write(pw)) }()
			path := writeFile(b, b.TempDir(), "a.mender", pr)
			opts := Options{Keys: []PublicKey{ec.pub}}
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				f, err := os.Open(path)
				require.NoError(b, err)
				_, err = Verify(context.Background(), f, opts)
				f.Close()
				require.NoError(b, err)
			}
		})
	}
}

// run measures one child process: wall time and peak RSS.
func run(b *testing.B, cmd *exec.Cmd) (time.Duration, float64) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	require.NoError(b, err, "%v: %s", cmd.Args, stderr.String())
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rss := 0.0
	if ru != nil {
		rss = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return wall, rss
}

// BenchmarkCompareTools runs, on the same files, our verifier (this test
// binary re-executed as a one-shot verifier), `mender-artifact validate
// -k` and `openssl dgst -sha256` over the uncompressed payload (the
// SHA-256 limit of one core), and reports wall seconds, peak RSS in MiB
// and the ratios. The Artifacts are written by mender-artifact itself.
func BenchmarkCompareTools(b *testing.B) {
	tool := testenv.LookPath(b, "mender-artifact")
	openssl := testenv.LookPath(b, "openssl")
	self, err := os.Executable()
	require.NoError(b, err)
	size := benchSize(b)
	dir := b.TempDir()
	key := filepath.Join(dir, "k.key")
	pub := filepath.Join(dir, "k.pub")
	out, err := exec.Command(openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key).CombinedOutput()
	require.NoError(b, err, "%s", out)
	out, err = exec.Command(openssl, "pkey", "-in", key, "-pubout", "-out", pub).CombinedOutput()
	require.NoError(b, err, "%s", out)
	payloads := map[string]string{}
	for _, c := range []struct{ data, comp string }{
		{"random", "gzip"}, {"compressible", "gzip"}, {"compressible", "lzma"},
	} {
		b.Run(c.data+"-"+c.comp, func(b *testing.B) {
			payload := payloads[c.data]
			if payload == "" {
				payload = writeFile(b, dir, c.data+".img", newGen(size, c.data == "compressible"))
				payloads[c.data] = payload
			}
			art := filepath.Join(dir, c.data+"-"+c.comp+".mender")
			out, err := exec.Command(tool, "--compression", c.comp, "write", "rootfs-image", "-f", payload,
				"-n", "bench", "-t", "dev", "-k", key, "-o", art).CombinedOutput()
			require.NoError(b, err, "%s", out)
			var ours, theirs, sha time.Duration
			var oursRSS, theirsRSS, shaRSS float64
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				child := exec.Command(self)
				child.Env = append(os.Environ(), childEnv+"="+art+":"+pub)
				w, r := run(b, child)
				ours, oursRSS = ours+w, max(oursRSS, r)
				w, r = run(b, exec.Command(tool, "validate", "-k", pub, art))
				theirs, theirsRSS = theirs+w, max(theirsRSS, r)
				w, r = run(b, exec.Command(openssl, "dgst", "-sha256", payload))
				sha, shaRSS = sha+w, max(shaRSS, r)
			}
			n := float64(b.N)
			b.ReportMetric(ours.Seconds()/n, "ours-s")
			b.ReportMetric(theirs.Seconds()/n, "mender-artifact-s")
			b.ReportMetric(sha.Seconds()/n, "sha256-s")
			b.ReportMetric(ours.Seconds()/sha.Seconds(), "ours/sha256")
			b.ReportMetric(theirs.Seconds()/ours.Seconds(), "speedup-vs-tool")
			b.ReportMetric(oursRSS, "ours-RSS-MiB")
			b.ReportMetric(theirsRSS, "mender-artifact-RSS-MiB")
			b.ReportMetric(shaRSS, "sha256-RSS-MiB")
			fmt.Fprintf(os.Stderr, "%s-%s %d MiB: ours %.2fs %.0f MiB | mender-artifact %.2fs %.0f MiB | openssl sha256 %.2fs %.0f MiB\n",
				c.data, c.comp, size>>20, ours.Seconds()/n, oursRSS, theirs.Seconds()/n, theirsRSS, sha.Seconds()/n, shaRSS)
		})
	}
}
