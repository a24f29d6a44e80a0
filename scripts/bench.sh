#!/bin/sh
# bench.sh (make bench, after `make build bin/mender-testserver`) measures
# what a device maker feels, next to the real alternative in the same run,
# and writes build/bench/report.md, build/bench/report.json and
# docs/benchmarks.md. Benchmarks report; they never fail on a figure.
#
# Steps: install the references (scripts/install-deps.sh bench), cross-build
# every target, unpack the Debian mender-client 3.4.0 package under
# build/bench (never installed), run the Go benchmarks, then
# test/bench/cmd/mender-bench, which runs both clients against the local
# test server and a private dbus-daemon. The heavy Go benchmarks (1 GiB
# artifacts, fleet) run during its 60 s idle-CPU window.
#
# The Debian client reads /usr/share/mender/identity/mender-device-identity
# and /etc/mender/artifact_info, paths it cannot move: as root, mender-bench
# runs in a private mount namespace where /usr/share and /etc are read-only
# overlays adding just those files. The host is not changed.
#
# Environment: BENCH_QUICK=1 for a fast smoke run (small artifacts, short
# idle window, one cold-start run); BENCH_SKIP_DEPS=1 skips install-deps.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bench"
mkdir -p "$out"
cd "$root"
t0=$(date +%s)
say() { echo "bench: $*"; }

quick=${BENCH_QUICK:-0}
size=1GiB runs=5 idle=60s calls=10000 fleet_outage=6s benchtime=500ms
if [ "$quick" = 1 ]; then
	size=64MiB runs=1 idle=5s calls=1000 fleet_outage=1s benchtime=50ms
fi

# 1. Cross binaries for the size figures, in the background: on a fresh
# machine compiling is the longest step, and it overlaps the installs and
# downloads below. Nothing is measured until it is done.
say "cross-building every target (log in build/bench/cross.log)"
make -s cross >"$out/cross.log" 2>&1 &
cross_pid=$!

# 2. References and tools.
if [ "${BENCH_SKIP_DEPS:-0}" != 1 ]; then
	scripts/install-deps.sh bench
fi

# 3. The Debian mender-client, unpacked only.
mc="$out/mender-client"
mender=""
if [ ! -x "$mc/usr/bin/mender" ]; then
	rm -rf "$mc" "$out/deb"
	mkdir -p "$out/deb"
	say "downloading the Debian mender-client package (unpacked under build/bench, not installed)"
	if ! (cd "$out/deb" && apt-get download mender-client >/dev/null 2>&1); then
		# A fresh machine may have no package lists yet.
		if [ "$(id -u)" -eq 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
		(cd "$out/deb" && apt-get download mender-client >/dev/null 2>&1) || say "apt-get download mender-client failed; the client reference will be missing"
	fi
	deb=$(ls "$out"/deb/mender-client_*.deb 2>/dev/null | head -n1 || true)
	[ -n "$deb" ] && dpkg-deb -x "$deb" "$mc"
fi
[ -x "$mc/usr/bin/mender" ] && mender="$mc/usr/bin/mender"
[ -n "$mender" ] && say "reference client: $("$mender" --version 2>/dev/null | head -n1)"

# 4. Go benchmarks that need a quiet machine (the heavy ones run later).
# Compile every test binary first, while the cross build still runs.
light="./keystore/... ./tpm/... ./dbus/... ./forwarder/... ./agent/... ./trust ./config/... ./identity/..."
# shellcheck disable=SC2086
go test -count=1 -run '^$' $light ./trust/artifact/ ./test/fleet/ >/dev/null 2>&1 || true
go build -o "$out/mender-bench" ./test/bench/cmd/mender-bench
if ! wait "$cross_pid"; then
	say "make cross failed (see build/bench/cross.log); the size figures will be missing"
fi
say "Go benchmarks ($light); raw output in build/bench/go.txt"
# shellcheck disable=SC2086
MENDER_AGENT_REQUIRE_TOOLS=1 go test -run '^$' -bench . -benchmem -count=1 -benchtime "$benchtime" -timeout 20m $light >"$out/go.txt" 2>&1 ||
	say "some Go benchmarks failed (see build/bench/go.txt); reporting what ran"

# 5. The heavy Go benchmarks, run by mender-bench during its idle window.
heavy="$out/heavy.sh"
cat >"$heavy" <<EOF
#!/bin/sh
cd "$root"
MENDER_AGENT_BENCH_SIZE=$size MENDER_AGENT_REQUIRE_TOOLS=1 go test -run '^\$' -bench 'BenchmarkCompareTools/gzip\$' -benchtime 1x -count=1 -timeout 20m ./trust/artifact/ >"$out/go-artifact.txt" 2>&1 || echo "bench: artifact benchmark failed (see build/bench/go-artifact.txt)"
MENDER_AGENT_FLEET_OUTAGE=$fleet_outage MENDER_AGENT_REQUIRE_TOOLS=1 go test -run '^\$' -bench 'BenchmarkFleetRecovery' -benchmem -benchtime 1x -count=1 -timeout 20m ./test/fleet/ >"$out/go-fleet.txt" 2>&1 || echo "bench: fleet benchmark failed (see build/bench/go-fleet.txt)"
EOF
chmod 0755 "$heavy"

# 6. The comparison driver (built in step 4).
ov="$out/overlay"
rm -rf "$ov"
mkdir -p "$ov/share/mender/identity" "$ov/share/mender/inventory" "$ov/etc/mender"
cat >"$ov/share/mender/identity/mender-device-identity" <<'EOF'
#!/bin/sh
echo "mac=${MENDER_BENCH_MAC:-02:00:5e:10:00:01}"
echo "bench=mender-bench"
EOF
chmod 0755 "$ov/share/mender/identity/mender-device-identity"
echo "artifact_name=bench-0" >"$ov/etc/mender/artifact_info"

set -- -root "$root" -out "$out" -runs "$runs" -idle "$idle" -calls "$calls" \
	-gobench "$out/go.txt,$out/go-artifact.txt,$out/go-fleet.txt" -during-idle "$heavy" -artifact-size "$size" \
	-elapsed-since "$t0"
[ -n "$mender" ] && set -- "$@" -mender "$mender" -mender-root "$mc"
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
	say "running mender-bench in a private mount namespace (overlays on /usr/share and /etc)"
	unshare -m sh -c '
		ov=$1; shift
		mount --make-rprivate / &&
		mount -t overlay overlay -o "lowerdir=$ov/share:/usr/share" /usr/share &&
		mount -t overlay overlay -o "lowerdir=$ov/etc:/etc" /etc || {
			echo "bench: overlay mounts failed; the Debian client reference needs them" >&2
			exec "$@" -overlay-note "overlay mounts failed in the private mount namespace"
		}
		exec "$@" -identity-overlay "$ov/share"
	' sh "$ov" "$out/mender-bench" "$@"
else
	"$out/mender-bench" "$@" -overlay-note "not root or no private mount namespace: the Debian client reads its identity script only from /usr/share/mender/identity"
fi

cp "$out/report.md" "$root/docs/benchmarks.md"
say "report: build/bench/report.md, build/bench/report.json, docs/benchmarks.md ($(( $(date +%s) - t0 )) s)"
