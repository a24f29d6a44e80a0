#!/bin/sh
# check-with-bitbake.sh parses meta-mender-agent with a real bitbake,
# offline, for anyone who has checkouts of bitbake and openembedded-core
# (wrynose). CI cannot fetch those; it runs the Go layer tests instead.
#
# Usage: yocto/check-with-bitbake.sh BITBAKE_DIR OECORE_DIR
# Runs: bitbake -p, bitbake -e mender-agent, bitbake -g core-image-minimal.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BITBAKE_DIR OECORE_DIR" >&2; exit 2; }
bitbake_dir=$(cd "$1" && pwd)
oecore_dir=$(cd "$2" && pwd)
layer=$(cd "$(dirname "$0")/meta-mender-agent" && pwd)
[ -x "$bitbake_dir/bin/bitbake" ] || { echo "$bitbake_dir/bin/bitbake not found" >&2; exit 2; }
[ -f "$oecore_dir/meta/conf/layer.conf" ] || { echo "$oecore_dir/meta/conf/layer.conf not found" >&2; exit 2; }

build=$(mktemp -d /tmp/mender-agent-bitbake.XXXXXX)
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/conf"
cat >"$build/conf/bblayers.conf" <<CONF
BBLAYERS = "$oecore_dir/meta $layer"
CONF
cat >"$build/conf/local.conf" <<CONF
MACHINE = "qemux86-64"
DISTRO = "nodistro"
INIT_MANAGER = "systemd"
BB_NO_NETWORK = "1"
INHERIT_DISTRO:remove = "uninative"
IMAGE_INSTALL:append = " mender-agent"
PACKAGECONFIG:pn-mender-agent = "tpm"
CONF
export PATH="$bitbake_dir/bin:$PATH" BBPATH="$build"
cd "$build"
echo "== bitbake -p"; bitbake -p
echo "== bitbake -e mender-agent"; bitbake -e mender-agent >"$build/env.txt"
grep -E '^(S|GO_IMPORT|SYSTEMD_SERVICE:mender-agent|RCONFLICTS:mender-agent)=' "$build/env.txt"
echo "== bitbake -g core-image-minimal"; bitbake -g core-image-minimal
echo "check-with-bitbake: the layer parses and resolves"
