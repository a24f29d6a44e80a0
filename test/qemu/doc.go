// Package qemu boots the cross-compiled mender-agent in real Linux guests
// under QEMU (x86-64 with a TPM from swtpm, arm64 and armv7) and checks it
// the way a device uses it: Debian's stock kernel and dbus-daemon with
// Debian's system.conf and the project's shipped D-Bus policy, the agent
// started as the service, a root consumer and a refused non-root consumer,
// the loopback forwarder, a persistent data disk across reboots and a server
// outage at boot. The server is test/authserver on host loopback, reached
// from the guest through QEMU's restricted user network and a guestfwd rule.
//
// The boot tests carry the build tag "qemu" and need the guest kernels and
// userland that scripts/qemu-prepare.sh fetches (the tests run it when its
// output is missing):
//
//	scripts/qemu-prepare.sh build/qemu
//	go test -tags qemu -count=1 -timeout 15m ./test/qemu/
//
// Without the tag only the initramfs builder's own tests run (cpio writer,
// ELF library closure, module load order), which need no QEMU.
//
// qemu-user.sh in this directory is the other ARM tier: it runs every
// package's ordinary tests as arm64 and armv7 binaries under qemu-user, and
// lists the few tests it leaves out with the reason for each.
//
// It is test-only and may import anything in the module; nothing may import
// it.
package qemu
