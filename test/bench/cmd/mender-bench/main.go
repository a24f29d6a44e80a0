// Command mender-bench measures what a device maker feels from mender-agent
// next to the Debian mender-client 3.4.0 in the same run, and writes the
// report of `make bench`: build/bench/report.md and build/bench/report.json.
// It is test infrastructure, run by scripts/bench.sh; it is not shipped.
//
//	mender-bench -root . -out build/bench -gobench build/bench/go.txt \
//	    -mender build/bench/mender-client/usr/bin/mender
//
// It measures, with real processes only (a private dbus-daemon, the local
// test server on 127.0.0.1, the agent binary, the Debian binary):
//   - binary size of each cross target against the mender binary plus the
//     shared libraries it loads;
//   - cold start to first token per key type (empty data directory) for
//     `mender-agent bootstrap` and `mender bootstrap`, and from `daemon`
//     start to a token at a D-Bus consumer for both daemons;
//   - resident memory after authentication and after -calls GetJwtToken
//     calls over D-Bus, for both daemons;
//   - CPU time each idle daemon uses over -idle after authenticating.
//
// The Go benchmarks' output (-gobench) supplies the remaining figures. A
// figure never fails the run: budgets are printed as met or missed.
//
// The Debian client reads its identity script from
// /usr/share/mender/identity and its artifact name from
// /etc/mender/artifact_info, paths it cannot move. scripts/bench.sh runs
// this command in a private mount namespace whose /usr/share and /etc are
// read-only overlays adding those files (-identity-overlay names the
// overlay's source), so nothing on the host changes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "mender-bench:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage error")

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mender-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.root, "root", ".", "repository root (bin/ holds the built binaries)")
	fs.StringVar(&o.out, "out", "build/bench", "output directory for the report and work files")
	fs.StringVar(&o.goBench, "gobench", "", "output of `go test -bench` to take the Go benchmark figures from")
	fs.StringVar(&o.mender, "mender", "", "the Debian mender-client `mender` binary (extracted, not installed); empty skips the reference")
	fs.StringVar(&o.menderRoot, "mender-root", "", "root of the extracted mender-client package (D-Bus policy files)")
	fs.StringVar(&o.overlay, "identity-overlay", "", "directory overlaid on /usr/share by bench.sh (holds mender/identity/mender-device-identity)")
	fs.StringVar(&o.overlayNote, "overlay-note", "", "why the overlay is missing, for the report")
	fs.StringVar(&o.artifactSize, "artifact-size", "1GiB", "payload size the artifact benchmark ran with, for the report")
	fs.IntVar(&o.runs, "runs", 5, "cold-start runs per key type (fewer for rsa-4096)")
	fs.IntVar(&o.calls, "calls", 10000, "GetJwtToken calls before the second memory reading")
	fs.DurationVar(&o.idle, "idle", 60e9, "idle window for the CPU reading")
	fs.Int64Var(&o.since, "elapsed-since", 0, "Unix time `make bench` started, to report its run time")
	fs.StringVar(&o.duringIdle, "during-idle", "", "program to run (and wait for) during the idle-CPU window: the heavy Go benchmarks")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "mender-bench: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	b, err := newBench(o, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	return b.run(ctx)
}
