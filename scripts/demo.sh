#!/bin/sh
# demo.sh (make run) shows a device authenticating end to end on this
# machine, with nothing shared with the system: a private dbus-daemon that
# loads our policy file, the local test server on 127.0.0.1 with a CA made
# for the run, and `mender-agent daemon` with all its state in a temporary
# directory. A consumer then gets the token over D-Bus. Ctrl-C stops
# everything the demo started.
#
# Usage: scripts/demo.sh [--once]
#   --once   exit after the consumer got the token (used by the tests)
# Environment: TOKEN_LIFETIME (default 60s) shows renewals quickly.
set -eu

once=0
[ "${1:-}" = "--once" ] && once=1
root=$(cd "$(dirname "$0")/.." && pwd)
agent="${MENDER_AGENT_BIN:-$root/bin/mender-agent}"
server="${MENDER_TESTSERVER_BIN:-$root/bin/mender-testserver}"
for b in "$agent" "$server"; do
	[ -x "$b" ] || { echo "demo: $b missing; run 'make run' (it builds both)" >&2; exit 1; }
done
command -v dbus-daemon >/dev/null || { echo "demo: dbus-daemon missing; run scripts/install-deps.sh" >&2; exit 1; }

tmp=$(mktemp -d /tmp/mender-agent-demo.XXXXXX)
pids=""
cleanup() {
	trap - EXIT INT TERM
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

# now_ms prints milliseconds since the epoch.
now_ms() { date +%s%3N; }

wait_for() { # FILE WHAT
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] && { echo "demo: $2 did not start; its log:" >&2; cat "$tmp"/*.log >&2; exit 1; }
		sleep 0.05
	done
}

# 1. A private system-like bus that loads our shipped policy file.
mkdir -p "$tmp/bus"
sed -e "s|@SOCKET@|$tmp/bus/socket|" \
	-e "s|@INCLUDES@|  <include>$root/dist/io.mender.AuthenticationManager.conf</include>|" \
	"$root/test/dbustest/system-like.conf" >"$tmp/bus/bus.conf"
dbus-daemon --config-file="$tmp/bus/bus.conf" --nofork --nopidfile --print-address=1 >"$tmp/bus/address" 2>"$tmp/bus.log" &
pids="$pids $!"
wait_for "$tmp/bus/address" dbus-daemon
DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$tmp/bus/address")
export DBUS_SYSTEM_BUS_ADDRESS

# 2. The local test server with a CA made for this run.
"$server" -listen 127.0.0.1:0 -tls-dir "$tmp/server" -auto-accept \
	-token-lifetime "${TOKEN_LIFETIME:-60s}" -ready-file "$tmp/server/url" >"$tmp/server.log" 2>&1 &
pids="$pids $!"
wait_for "$tmp/server/url" mender-testserver
url=$(cat "$tmp/server/url")

# 3. Device side: identity script, configuration, empty data directory.
MENDER_DATA_DIR="$tmp/share/mender"
export MENDER_DATA_DIR
mkdir -p "$MENDER_DATA_DIR/identity" "$tmp/etc"
cat >"$MENDER_DATA_DIR/identity/mender-device-identity" <<'ID'
#!/bin/sh
echo "mac=02:00:5e:10:00:01"
echo "serial=DEMO-0001"
ID
chmod 0755 "$MENDER_DATA_DIR/identity/mender-device-identity"
cat >"$tmp/etc/mender.conf" <<CONF
{
  "ServerURL": "$url",
  "ServerCertificate": "$tmp/server/ca.crt",
  "Agent": {"RenewAtFraction": 0.5, "RenewMarginSeconds": 5}
}
CONF
ma() { "$agent" -c "$tmp/etc/mender.conf" -d "$tmp/data" "$@"; }

echo "== mender-agent demo =="
echo "server:   $url (local test server, auto-accepting devices)"
echo "bus:      $DBUS_SYSTEM_BUS_ADDRESS (private, with dist/io.mender.AuthenticationManager.conf)"
echo "state:    $tmp/data"
echo
start=$(now_ms)
ma daemon >"$tmp/agent.log" 2>&1 &
pids="$pids $!"

# 4. A consumer asks for the token over D-Bus, as mender-update would.
if ! out=$(ma token --wait 20s 2>&1); then
	echo "demo: no token; agent log:" >&2
	cat "$tmp/agent.log" >&2
	echo "$out" >&2
	exit 1
fi
took=$(( $(now_ms) - start ))

echo "-- device key"
ma show-key | sed 's/^/   /'
echo "-- identity"
"$MENDER_DATA_DIR/identity/mender-device-identity" | sed 's/^/   /'
echo "-- token from D-Bus (claims only; the token itself is a secret)"
echo "$out" | sed 's/^/   /'
echo
echo "from daemon start to token at the consumer: ${took} ms (key generation included)"
[ "$once" = 1 ] && exit 0

echo
echo "Watching the agent renew its token before expiry (lifetime ${TOKEN_LIFETIME:-60s}); Ctrl-C stops everything."
tail -n +1 -f "$tmp/agent.log" | grep --line-buffered -i -e authenticated -e error -e warn |
	sed -u -n 's/^time="\([^"]*\)" level=\([a-z]*\) msg="\([^"]*\)".*/   \1  \2  \3/p'
