package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// goFigures turns the Go benchmarks' output into report figures.
func (b *bench) goFigures() {
	g := goBench{}
	for _, p := range strings.Split(b.o.goBench, ",") {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			b.rep.note("Go benchmark output %s missing: %v", p, err)
			continue
		}
		err = parseGoBench(f, g)
		f.Close()
		if err != nil {
			b.rep.note("Go benchmark output %s unreadable: %v", p, err)
		}
	}
	names := make([]string, 0, len(g))
	for n := range g {
		names = append(names, n)
	}
	slices.Sort(names)
	withPrefix := func(prefix string) []string {
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				out = append(out, strings.TrimPrefix(n, prefix))
			}
		}
		return out
	}
	missing := func(sec, name string) {
		b.rep.add(figure{Section: sec, Name: name, Note: "benchmark did not run (see build/bench/go*.txt)"}, nil)
	}

	// D-Bus.
	const dbusSec = "GetJwtToken over a private bus (dbus.BenchmarkGetJwtToken)"
	if g.get("dbus.BenchmarkGetJwtToken", "calls/s") == nil {
		missing(dbusSec, "GetJwtToken calls/s")
	} else {
		b.rep.add(figure{Section: dbusSec, Name: "GetJwtToken calls/s", Unit: "calls/s", Ours: g.get("dbus.BenchmarkGetJwtToken", "calls/s"),
			Note: "consumer and service in one process, real dbus-daemon between them; the real-daemon figures are in the memory section"},
			&budget{text: ">= 5000 calls/s", min: 5000})
		b.rep.add(figure{Section: dbusSec, Name: "GetJwtToken p50", Unit: "µs", Ours: g.get("dbus.BenchmarkGetJwtToken", "p50-µs")}, nil)
		b.rep.add(figure{Section: dbusSec, Name: "GetJwtToken p99", Unit: "µs", Ours: g.get("dbus.BenchmarkGetJwtToken", "p99-µs")}, nil)
		b.rep.add(figure{Section: dbusSec, Name: "allocations per call (both ends)", Unit: "allocs", Ours: g.get("dbus.BenchmarkGetJwtToken", "allocs/op")}, nil)
	}

	// Forwarder. The budget applies to the realistic pair: several
	// consumers at once and a server a network away, which is what a
	// device feels. The zero-latency pair (one consumer, a server that
	// answers at once, all on loopback) has no budget: it isolates the
	// time the extra hop adds to each request.
	const fwdSec = "Loopback forwarder (forwarder.BenchmarkForwarderRealistic; BenchmarkForwarder vs BenchmarkDirect)"
	fw, direct := g.get("forwarder.BenchmarkForwarderRealistic", "req/s"), g.get("forwarder.BenchmarkForwarderRealistic", "direct-req/s")
	if fw == nil {
		missing(fwdSec, "requests/s through the forwarder")
	} else {
		b.rep.add(figure{Section: fwdSec, Name: "requests/s through the forwarder (8 consumers at once, server 2 ms away)", Unit: "req/s", Ours: fw,
			RefName: "the same load straight to the server", Reference: direct,
			Note: "the budget applies here: 8 concurrent consumers, the trust store's transport, an upstream handler that waits 2 ms before answering (a server on another network); both paths in alternating rounds of one benchmark, all on this machine's loopback"},
			&budget{text: ">= 0.8x of direct", min: 0.8, onRatio: true})
	}
	seq, seqDirect := g.get("forwarder.BenchmarkForwarder", "req/s"), g.get("forwarder.BenchmarkDirect", "req/s")
	if seq == nil {
		missing(fwdSec, "requests/s one at a time, server answering at once")
	} else {
		b.rep.add(figure{Section: fwdSec, Name: "requests/s one at a time, server answering at once", Unit: "req/s", Ours: seq,
			RefName: "the same requests straight to the server", Reference: seqDirect,
			Note: "no budget: one consumer and no network, so this ratio is one hop against two; it gives the added latency below"}, nil)
		a, d := g.get("forwarder.BenchmarkForwarder", "ns/op"), g.get("forwarder.BenchmarkDirect", "ns/op")
		if a != nil && d != nil {
			b.rep.add(figure{Section: fwdSec, Name: "added latency per request", Unit: "µs", Ours: val((*a - *d) / 1e3),
				Note: fmt.Sprintf("%.0f µs through the forwarder, %.0f µs direct", *a/1e3, *d/1e3)}, nil)
		}
	}

	// Artifact verification.
	artSec := "Artifact verification, " + strings.Replace(strings.Replace(b.o.artifactSize, "GiB", " GiB", 1), "MiB", " MiB", 1) + " payloads (trust/artifact.BenchmarkCompareTools)"
	memLimit, memNote := sha256Limit(b.o.artifactSize)
	cases := withPrefix("trust/artifact.BenchmarkCompareTools/")
	if len(cases) == 0 {
		missing(artSec, "verify")
	}
	for _, c := range cases {
		n := "trust/artifact.BenchmarkCompareTools/" + c
		var sha, tool, rss *budget
		switch c {
		case "random-gzip":
			sha = &budget{text: "<= 1.1x SHA-256 limit", max: 1.1, onRatio: true}
			rss = &budget{text: "<= 32 MiB", max: 32}
		case "compressible-gzip":
			tool = &budget{text: ">= 1.5x faster than mender-artifact (ratio <= 0.67x)", max: 1 / 1.5, onRatio: true}
			rss = &budget{text: "<= 32 MiB", max: 32}
		}
		b.rep.add(figure{Section: artSec, Name: c + ": wall vs the one-core SHA-256 limit", Unit: "s", Ours: g.get(n, "ours-s"),
			RefName: "`openssl dgst -sha256` of the payload", Reference: g.get(n, "sha256-s")}, sha)
		b.rep.add(figure{Section: artSec, Name: c + ": wall vs the in-memory SHA-256 limit", Unit: "s", Ours: g.get(n, "ours-s"),
			RefName: "`openssl speed -evp sha256` (1 MiB blocks, no I/O)", Reference: memLimit, Note: memNote}, nil)
		b.rep.add(figure{Section: artSec, Name: c + ": wall vs mender-artifact", Unit: "s", Ours: g.get(n, "ours-s"),
			RefName: "`mender-artifact validate -k`", Reference: g.get(n, "mender-artifact-s")}, tool)
		b.rep.add(figure{Section: artSec, Name: c + ": peak RSS", Unit: "MiB", Ours: g.get(n, "ours-RSS-MiB"),
			RefName: "`mender-artifact validate -k`", Reference: g.get(n, "mender-artifact-RSS-MiB"),
			Note: fmt.Sprintf("openssl dgst: %s MiB", fmtNum(g.get(n, "sha256-RSS-MiB")))}, rss)
	}
	if len(cases) > 0 {
		b.rep.note("Artifact figures: the Artifacts are written by `mender-artifact write rootfs-image` (ECDSA P-256 signed) from generated payloads; \"ours\" is the verifier in a child process, one run per tool.")
	}

	// Signing and key generation.
	const signSec = "Signing one auth request and generating keys"
	for _, t := range withPrefix("keystore.BenchmarkSign/") {
		b.rep.add(figure{Section: signSec, Name: "sign, file key, " + t, Unit: "µs", Ours: g.scaled("keystore.BenchmarkSign/"+t, "ns/op", 1e-3)}, nil)
	}
	fileKey := g.scaled("tpm.BenchmarkSignFileKey", "ns/op", 1e-3)
	for _, t := range withPrefix("tpm.BenchmarkSignTPM/") {
		f := figure{Section: signSec, Name: "sign, TPM (swtpm), " + t, Unit: "µs", Ours: g.scaled("tpm.BenchmarkSignTPM/"+t, "ns/op", 1e-3),
			Note: "swtpm over its socket; a hardware TPM is slower"}
		if t == "ecdsa-p256" {
			f.RefName, f.Reference = "file key ecdsa-p256 in process", fileKey
		}
		b.rep.add(f, nil)
	}
	if v := g.scaled("tpm.BenchmarkLoadTPM", "ns/op", 1e-6); v != nil {
		b.rep.add(figure{Section: signSec, Name: "TPM key load at start (SRK, load, flush)", Unit: "ms", Ours: v}, nil)
	}
	for _, t := range withPrefix("keystore.BenchmarkGenerate/") {
		b.rep.add(figure{Section: signSec, Name: "generate key, " + t, Unit: "ms", Ours: g.scaled("keystore.BenchmarkGenerate/"+t, "ns/op", 1e-6),
			Note: "random: RSA generation time varies widely run to run"}, nil)
	}

	// Fleet.
	const fleetSec = "Fleet recovery after a 60 s server outage (test/fleet.BenchmarkFleetRecovery)"
	modes := withPrefix("test/fleet.BenchmarkFleetRecovery/")
	if len(modes) == 0 {
		missing(fleetSec, "peak-to-mean")
	}
	for _, m := range modes {
		n := "test/fleet.BenchmarkFleetRecovery/" + m
		agents := fmtNum(g.get(n, "agents"))
		b.rep.add(figure{Section: fleetSec, Name: m + ": peak/mean request rate until all authenticated", Unit: "x", Ours: g.get(n, "peak/mean"),
			Note: agents + " agents; " + fmtNum(g.get(n, "peak-req/s")) + " req/s peak, " + fmtNum(g.get(n, "mean-req/s")) + " mean"},
			&budget{text: "<= 3x", max: 3})
		b.rep.add(figure{Section: fleetSec, Name: m + ": peak/mean until 90% authenticated", Unit: "x", Ours: g.get(n, "peak/mean-90%")}, nil)
		b.rep.add(figure{Section: fleetSec, Name: m + ": time to 90% authenticated", Unit: "s", Ours: g.get(n, "s-to-90%-authed")}, nil)
		b.rep.add(figure{Section: fleetSec, Name: m + ": time to full recovery", Unit: "s", Ours: g.get(n, "s-to-all-authed"),
			Note: "at full scale; bounded by the backoff ceiling"}, nil)
		b.rep.add(figure{Section: fleetSec, Name: m + ": requests per agent during the outage", Unit: "req", Ours: g.get(n, "outage-req/agent")}, nil)
	}

	// Hot paths.
	const hotSec = "Hot paths (ns/op, bytes and allocations per op)"
	for _, n := range []string{"agent.BenchmarkCurrent", "agent.BenchmarkRequestRefresh", "trust.BenchmarkVerify", "config.BenchmarkParse", "identity.BenchmarkParseAndJSON"} {
		if g.get(n, "ns/op") == nil {
			continue
		}
		b.rep.add(figure{Section: hotSec, Name: n, Unit: "ns/op", Ours: g.get(n, "ns/op"),
			Note: fmt.Sprintf("%s B/op, %s allocs/op", fmtNum(g.get(n, "B/op")), fmtNum(g.get(n, "allocs/op")))}, nil)
	}
	for _, t := range withPrefix("keystore.BenchmarkLoad/") {
		n := "keystore.BenchmarkLoad/" + t
		b.rep.add(figure{Section: hotSec, Name: "key load at start, " + t, Unit: "ns/op", Ours: g.get(n, "ns/op"),
			Note: fmt.Sprintf("%s B/op, %s allocs/op", fmtNum(g.get(n, "B/op")), fmtNum(g.get(n, "allocs/op")))}, nil)
	}
}

// sha256Limit returns the time one core needs to hash size bytes in
// memory, from `openssl speed`, with a note; nil when it cannot run.
func sha256Limit(size string) (*float64, string) {
	n := parseSize(size)
	if n <= 0 {
		return nil, "unknown payload size " + size
	}
	out, err := exec.Command("openssl", "speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "2").Output()
	if err != nil {
		return nil, "openssl speed: " + err.Error()
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.EqualFold(f[0], "sha256") && strings.HasSuffix(f[1], "k") {
			kbs, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "k"), 64)
			if err != nil || kbs <= 0 {
				break
			}
			bps := kbs * 1000
			return val(float64(n) / bps), fmt.Sprintf("%.0f MB/s", bps/1e6)
		}
	}
	return nil, "openssl speed printed no sha256 figure"
}

// parseSize reads "1GiB", "64MiB" or a byte count.
func parseSize(s string) int64 {
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
	if err != nil {
		return 0
	}
	return n * mult
}

// diagnose adds the summary of missed budgets and, for each, the matching
// section of test/bench/diagnosis.md (sections are "## KEY", KEY a
// substring of "Section: Name").
func (b *bench) diagnose() {
	var met, missed, unmeasured int
	diag := map[string]string{}
	var keys []string
	if data, err := os.ReadFile(filepath.Join(b.o.root, "test", "bench", "diagnosis.md")); err == nil {
		key := ""
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if k, ok := strings.CutPrefix(l, "## "); ok {
				key = strings.TrimSpace(k)
				keys = append(keys, key)
				continue
			}
			if key != "" {
				diag[key] += l
			}
		}
	}
	var found []string
	for _, f := range b.rep.Figures {
		if f.Budget == "" {
			continue
		}
		switch {
		case f.Met == nil:
			unmeasured++
		case *f.Met:
			met++
		default:
			missed++
			full := f.Section + ": " + f.Name
			for _, k := range keys {
				if strings.Contains(full, k) && !slices.Contains(found, k) {
					found = append(found, k)
				}
			}
		}
	}
	b.summary = append(b.summary, fmt.Sprintf("%d budgets met, %d missed, %d not measured.", met, missed, unmeasured))
	for _, k := range found {
		b.summary = append(b.summary, "\n### Missed: "+k+"\n\n"+strings.TrimSpace(diag[k]))
	}
}
