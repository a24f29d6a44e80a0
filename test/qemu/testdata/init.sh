#!/bin/busybox sh
# /init of the QEMU test guest. It brings up what a device has at boot
# (devices, network, the data partition, the system bus), starts
# mender-agent as the service and plays one consumer scenario. It prints
# QT-CHECK and QT-VALUE lines for the host test, then exactly one
# "QEMU-TEST-RESULT: PASS" or "QEMU-TEST-RESULT: FAIL <checks>" line, and
# powers off.
#
# Parameters come from the kernel command line (the kernel hands unknown
# name=value words to init as environment variables):
#   QT_BOOT  1: format the data disk (first boot); 2: keep it (reboot)
#   QT_TPM   1: the device key must be a TPM key (TSS2 key file)

/bin/busybox mkdir -p /proc /sys /dev /run /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
exec </dev/console >/dev/console 2>&1

data=/var/lib/mender
key=$data/mender-agent.pem
fails=""
agent_pid=""

note() { echo "QT-NOTE $*"; }
value() { echo "QT-VALUE $1=$2"; }
pass() { echo "QT-CHECK $1: ok"; }
fail() {
	echo "QT-CHECK $1: FAIL${2:+ ($2)}"
	fails="$fails $1"
}
# check NAME CMD...: record whether CMD succeeds.
check() {
	name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}

finish() {
	if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
		kill "$agent_pid"
		wait "$agent_pid"
	fi
	if [ -f /tmp/agent.log ]; then
		sed 's/^/agent| /' /tmp/agent.log
	fi
	sync
	umount "$data" 2>/dev/null
	if [ -z "$fails" ]; then
		echo "QEMU-TEST-RESULT: PASS"
	else
		echo "QEMU-TEST-RESULT: FAIL$fails"
	fi
	poweroff -f
	sleep 30
}

# field NAME TEXT: the value of a "NAME: value" line of mender-agent output.
field() { echo "$2" | sed -n "s/^ *$1: *//p" | head -n 1; }

# Kernel modules, in dependency order.
while read -r m; do
	insmod "/lib/modules/$m.ko" || note "insmod $m failed"
done </etc/modules.order

# Network: only loopback (the forwarder) and the QEMU user network, whose
# guestfwd rule maps server.test (10.0.2.100:443) to the host test server.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# The data partition.
mkdir -p "$data"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ "$QT_BOOT" = 1 ]; then
	if mke2fs -F -L mender-data /dev/vda >/tmp/mke2fs.log 2>&1; then
		pass disk_formatted
	else
		fail disk_formatted "$(cat /tmp/mke2fs.log)"
	fi
fi
if ! mount -t ext2 /dev/vda "$data"; then
	fail data_mounted
	finish
fi
chmod 0700 "$data"
if [ "$QT_BOOT" = 2 ]; then
	check key_persisted test -s "$key"
	check token_cache_persisted test -s "$data/mender-agent-token.json"
fi

# The system bus, as Debian starts it.
mkdir -p /run/dbus
dbus-daemon --system --nopidfile --nosyslog --fork
i=0
while [ ! -S /run/dbus/system_bus_socket ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
check system_bus test -S /run/dbus/system_bus_socket

# The service.
mender-agent daemon >/tmp/agent.log 2>&1 &
agent_pid=$!
note "mender-agent daemon started as pid $agent_pid"

# Wait until the agent has a token: on the first boot it starts while the
# server is down and must get through once the server is back; on the
# second boot it answers from its token cache.
got=""
i=0
while [ $i -lt 180 ]; do
	if out=$(mender-agent token 2>&1); then
		got=1
		break
	fi
	sleep 1
	i=$((i + 1))
done
if [ -z "$got" ]; then
	fail agent_has_token "$out"
	finish
fi
pass agent_has_token
value first_sub "$(field sub "$out" | tr -d '"')"
check agent_not_restarted kill -0 "$agent_pid"

# The device key: mode 0600; in the TPM case a TSS2 key file and no
# software private key anywhere on the disk.
check key_mode_0600 test "$(stat -c %a "$key")" = 600
if [ "$QT_TPM" = 1 ]; then
	check key_is_tss2 test "$(head -n 1 "$key")" = "-----BEGIN TSS2 PRIVATE KEY-----"
	if grep -r -l -E -e "-----BEGIN (EC |RSA |ENCRYPTED |OPENSSH )?PRIVATE KEY-----" "$data"; then
		fail no_software_private_key
	else
		pass no_software_private_key
	fi
fi
if out=$(mender-agent show-key 2>&1); then
	value key_backend "$(field backend "$out")"
	value key_fingerprint "$(field fingerprint "$out")"
else
	fail show_key "$out"
fi

# A consumer uses the token through the loopback forwarder. On the second
# boot this happens before any new authentication, with the cached token.
forward() {
	wget -S -q -O /tmp/next --header "Authorization: Bearer $1" \
		"$2/api/devices/v1/deployments/device/deployments/next" 2>/tmp/wget.log &&
		grep -q "HTTP/1.1 20[04]" /tmp/wget.log
}
if out=$(mender-agent token --raw 2>&1); then
	token=$(field token "$out")
	url=$(field server_url "$out")
	value server_url "$url"
	case "$url" in
	http://127.0.0.1:*) pass forwarder_url_loopback ;;
	*) fail forwarder_url_loopback "$url" ;;
	esac
	if forward "$token" "$url"; then
		pass forwarder_request
	else
		fail forwarder_request "$(cat /tmp/wget.log)"
	fi
	echo "QT-MARK forwarder_done"
else
	fail get_token "$out"
fi

# The root consumer: FetchJwtToken, the JwtTokenStateChange signal, then
# GetJwtToken must hand out the token the signal carried.
if out=$(mender-agent token --fetch --wait 60s --raw 2>&1); then
	pass fetch_token
	fetched=$(field token "$out")
	value fetched_sub "$(field sub "$out" | tr -d '"')"
	if out=$(mender-agent token --raw 2>&1) && [ "$(field token "$out")" = "$fetched" ]; then
		pass get_token_after_fetch
	else
		fail get_token_after_fetch
	fi
else
	fail fetch_token "$out"
fi

# A non-root consumer is refused by the shipped policy.
if out=$(su -s /bin/sh nobody -c "mender-agent token --wait 5s" 2>&1); then
	fail nonroot_refused "the token was handed out"
else
	if echo "$out" | grep -q -e "policy denies" -e "AccessDenied"; then
		pass nonroot_refused
	else
		fail nonroot_refused "$out"
	fi
fi

# Stop the service the way systemd does and require a clean exit.
kill "$agent_pid"
if wait "$agent_pid"; then pass agent_clean_exit; else fail agent_clean_exit; fi
agent_pid=""
check token_cache_written test -s "$data/mender-agent-token.json"
finish
