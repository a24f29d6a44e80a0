#!/bin/sh
# fuzz.sh runs every Go fuzz target of the module with coverage-guided
# fuzzing for FUZZTIME each (default 4s: the brief run of `make test`;
# `make fuzz FUZZTIME=10m` for a long one). New crashers are written to the
# package's testdata/fuzz directory and fail the run.
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-4s}
count=0
start=$(date +%s)
for pkg in $(go list ./...); do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "fuzz: $pkg $t ($fuzztime)"
		go test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg" >/tmp/fuzz.$$.log 2>&1 || {
			cat /tmp/fuzz.$$.log
			rm -f /tmp/fuzz.$$.log
			echo "fuzz: $pkg $t found a failure (see above)" >&2
			exit 1
		}
		count=$((count + 1))
	done
done
rm -f /tmp/fuzz.$$.log
echo "fuzz: $count targets fuzzed for $fuzztime each in $(( $(date +%s) - start )) s"
