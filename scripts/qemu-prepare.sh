#!/bin/sh
# qemu-prepare.sh fetches what the QEMU test tier (test/qemu, build tag
# "qemu") boots: for amd64, arm64 and armhf a Debian kernel with the few
# modules the guest loads, and a sysroot holding busybox-static, dbus-daemon
# with its libraries and Debian's stock D-Bus system.conf.
#
# Usage: scripts/qemu-prepare.sh [BUILD_DIR] [ARCH...]
#   BUILD_DIR defaults to build/qemu; ARCH defaults to "amd64 arm64 armhf".
#
# It is idempotent: an arch whose BUILD_DIR/ARCH/ready stamp exists is left
# alone (delete the stamp or the directory to refetch). Nothing is
# installed: packages are fetched with `apt-get download` and unpacked with
# dpkg-deb. amd64 uses the host's apt lists; foreign arches use a private
# apt configuration under BUILD_DIR/apt-ARCH (never dpkg --add-architecture).
# Needs: apt-get, dpkg-deb, tar (all on every Debian system). The kernel ABI
# is resolved through the linux-image-FLAVOUR metapackage, never hard-coded.
#
# Result, per arch:
#   BUILD_DIR/ARCH/vmlinuz            the kernel
#   BUILD_DIR/ARCH/modules/*.ko       the modules the guest may need (flat)
#   BUILD_DIR/ARCH/sysroot/           unpacked userland packages
#   BUILD_DIR/ARCH/ready              stamp: kernel version and package list
set -eu

build=${1:-build/qemu}
[ $# -gt 0 ] && shift
[ $# -eq 0 ] && set -- amd64 arm64 armhf

mirror=${QEMU_PREPARE_MIRROR:-http://deb.debian.org/debian}
security_mirror=${QEMU_PREPARE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# Guest userland: busybox, dbus-daemon and every library it links (looked
# up again at initramfs build time from the ELF NEEDED entries), plus the
# package holding /usr/share/dbus-1/system.conf.
userland="busybox-static dbus-daemon dbus-system-bus-common libdbus-1-3 libsystemd0 libexpat1
libselinux1 libaudit1 libcap-ng0 libapparmor1 libc6 libcap2 libgcrypt20 liblzma5 libzstd1
liblz4-1 libpcre2-8-0 libgpg-error0 libgcc-s1"

# Modules, by path under lib/modules/VERSION/kernel: virtio PCI transport,
# block and net (with failover), e1000 for the x86 NIC, and ext4 (which
# also serves ext2) with its dependencies.
modules="drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko drivers/virtio/virtio_pci.ko
drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
drivers/block/virtio_blk.ko drivers/net/virtio_net.ko drivers/net/net_failover.ko
net/core/failover.ko drivers/net/ethernet/intel/e1000/e1000.ko fs/ext4/ext4.ko
fs/jbd2/jbd2.ko fs/mbcache.ko lib/crc16.ko crypto/crc32c_generic.ko"

say() { echo "qemu-prepare: $*"; }
die() { echo "qemu-prepare: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb tar; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found: this script needs a Debian system"
done

mkdir -p "$build"
build=$(cd "$build" && pwd)
start_all=$(date +%s)

# apt_env ARCH prints the APT_CONFIG value for ARCH ("" for the host arch).
apt_env() {
	[ "$1" = amd64 ] && return 0
	echo "$build/apt-$1/apt.conf"
}

# private_apt ARCH writes the private apt configuration for a foreign arch
# and updates its lists. A failed index (a mirror caught mid-sync) is
# tolerated as long as the kernel metapackage still resolves.
private_apt() {
	arch=$1 dir=$build/apt-$1
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" "$dir/preferences.d"
	: >"$dir/status"
	[ -r "$keyring" ] || die "$keyring not found: install debian-archive-keyring"
	cat >"$dir/sources.list" <<EOF
deb [signed-by=$keyring] $mirror bookworm main
deb [signed-by=$keyring] $mirror bookworm-updates main
deb [signed-by=$keyring] $security_mirror bookworm-security main
EOF
	cat >"$dir/apt.conf" <<EOF
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Dir::State::lists "$dir/lists";
Dir::State::status "$dir/status";
Dir::Cache "$dir/cache";
Dir::Etc::sourcelist "$dir/sources.list";
Dir::Etc::sourceparts "$dir/sources.list.d";
Dir::Etc::preferencesparts "$dir/preferences.d";
Acquire::Languages "none";
EOF
	t0=$(date +%s)
	if ! APT_CONFIG="$dir/apt.conf" apt-get update -qq -o APT::Update::Error-Mode=any >"$dir/update.log" 2>&1; then
		say "$arch: apt-get update reported errors (tolerated if the kernel still resolves):"
		grep -E '^(E|W):' "$dir/update.log" | sed 's/^/  /' >&2 || true
	fi
	say "$arch: private apt lists updated in $(($(date +%s) - t0)) s"
}

# resolve_kernel ARCH FLAVOUR prints the kernel package the metapackage
# linux-image-FLAVOUR depends on.
resolve_kernel() {
	APT_CONFIG=$(apt_env "$1") apt-cache depends "linux-image-$2" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

prepare() {
	arch=$1
	case "$arch" in
	amd64) flavour=amd64 ;;
	arm64) flavour=arm64 ;;
	armhf) flavour=armmp-lpae ;;
	*) die "unknown arch \"$arch\" (want amd64, arm64 or armhf)" ;;
	esac
	out=$build/$arch
	if [ -f "$out/ready" ]; then
		say "$arch: cached ($(head -n 1 "$out/ready")); delete $out/ready to refetch"
		return 0
	fi
	t0=$(date +%s)
	[ "$arch" = amd64 ] || private_apt "$arch"
	kpkg=$(resolve_kernel "$arch" "$flavour")
	[ -n "$kpkg" ] || die "$arch: linux-image-$flavour resolves to no kernel package; check the apt lists (for amd64 run apt-get update)"
	kver=${kpkg#linux-image-}

	rm -rf "$out/debs" "$out/sysroot" "$out/modules" "$out/vmlinuz" "$out/kernel.tmp"
	mkdir -p "$out/debs" "$out/sysroot" "$out/modules" "$out/kernel.tmp"
	t1=$(date +%s)
	# shellcheck disable=SC2086
	(cd "$out/debs" && APT_CONFIG=$(apt_env "$arch") apt-get download -qq $kpkg $userland 2>&1 |
		grep -v '^W: Download is performed unsandboxed' || true)
	for p in $kpkg $userland; do
		ls "$out/debs/${p}_"*.deb >/dev/null 2>&1 || die "$arch: package $p was not downloaded"
	done
	say "$arch: downloaded $kpkg and $(echo $userland | wc -w) userland packages ($(du -sh "$out/debs" | cut -f1)) in $(($(date +%s) - t1)) s"

	t1=$(date +%s)
	kdeb=$(ls "$out/debs/${kpkg}_"*.deb)
	want="./boot/vmlinuz-$kver"
	for m in $modules; do
		want="$want ./lib/modules/$kver/kernel/$m"
	done
	# Extract only the members this kernel actually ships (e1000 exists only
	# on x86; a module built into the kernel has no file).
	dpkg-deb --fsys-tarfile "$kdeb" | tar -t >"$out/kernel.tmp/list"
	members=""
	for w in $want; do
		grep -qxF "$w" "$out/kernel.tmp/list" && members="$members $w"
	done
	# shellcheck disable=SC2086
	dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$out/kernel.tmp" $members
	mv "$out/kernel.tmp/boot/vmlinuz-$kver" "$out/vmlinuz"
	find "$out/kernel.tmp/lib/modules" -name '*.ko' -exec mv {} "$out/modules/" \;
	rm -rf "$out/kernel.tmp"
	for deb in "$out"/debs/*.deb; do
		case "$deb" in "$kdeb") continue ;; esac
		dpkg-deb -x "$deb" "$out/sysroot"
	done
	# The kernel deb is the bulk of the download and is no longer needed.
	rm -f "$kdeb"
	say "$arch: extracted vmlinuz, $(ls "$out/modules" | wc -l) modules and the sysroot in $(($(date +%s) - t1)) s"
	{
		echo "$kpkg"
		echo "modules: $(ls "$out/modules" | tr '\n' ' ')"
		echo "userland: $(echo $userland)"
	} >"$out/ready"
	say "$arch: ready in $(($(date +%s) - t0)) s"
}

for arch in "$@"; do
	prepare "$arch"
done
say "done in $(($(date +%s) - start_all)) s: $build"
