#!/bin/sh
# install-deps.sh installs the system tools the test tiers and `make run`
# need. It is idempotent: packages already present are not reinstalled, and
# apt-get runs (after one `apt-get update`) only when something is missing.
#
# Usage: scripts/install-deps.sh [TIER...]
#   Tiers: base (default), tpm, artifact, qemu, bench (what `make bench`
#   measures against: base, tpm and artifact), all.
set -eu

base="file dbus openssl ca-certificates util-linux systemd xz-utils zstd"
tpm="swtpm swtpm-tools tpm2-tools tpm2-openssl"
artifact="mender-artifact"
qemu="qemu-system-x86 qemu-system-arm qemu-user-static busybox-static cpio swtpm"

want=""
[ $# -eq 0 ] && set -- base
for tier in "$@"; do
	case "$tier" in
	base) want="$want $base" ;;
	tpm) want="$want $tpm" ;;
	artifact) want="$want $artifact" ;;
	qemu) want="$want $qemu" ;;
	bench) want="$want $base $tpm $artifact" ;;
	all) want="$want $base $tpm $artifact $qemu" ;;
	*) echo "install-deps.sh: unknown tier \"$tier\" (want base, tpm, artifact, qemu, bench or all)" >&2; exit 2 ;;
	esac
done

missing=""
for pkg in $want; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $pkg"
	fi
done
[ -z "$missing" ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps.sh: need root or sudo to install:$missing" >&2
		exit 1
	fi
	sudo="sudo"
fi

echo "install-deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
