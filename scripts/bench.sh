#!/bin/sh
# bench.sh (make bench) runs every Go benchmark of the module once and
# writes the raw output plus a Markdown summary under build/bench/.
# Benchmarks report; they never fail the build on a figure.
#
# Environment: BENCHTIME (default 1x for the heavy fleet and artifact
# benchmarks, see each benchmark's doc), BENCH (regexp, default .).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bench"
mkdir -p "$out"
cd "$root"
bench=${BENCH:-.}
echo "bench: running Go benchmarks (-bench '$bench'); raw output in build/bench/go.txt"
MENDER_AGENT_REQUIRE_TOOLS=1 go test -run '^$' -bench "$bench" -benchmem -count=1 -timeout 30m ./... | tee "$out/go.txt"
{
	echo "# mender-agent benchmarks"
	echo
	echo "Machine: $(nproc) cores, $(uname -m), $(go version | cut -d' ' -f3). Generated $(date -u +%Y-%m-%dT%H:%M:%SZ)."
	echo
	echo "| benchmark | iterations | ns/op | other metrics |"
	echo "|---|---:|---:|---|"
	awk '/^Benchmark/ {
		name=$1; iters=$2; nsop=""; rest="";
		for (i = 3; i < NF; i += 2) {
			if ($(i+1) == "ns/op") nsop=$i; else rest = rest $i " " $(i+1) "; ";
		}
		printf("| %s | %s | %s | %s |\n", name, iters, nsop, rest);
	}' "$out/go.txt"
} >"$out/report.md"
echo "bench: report written to build/bench/report.md"
