#!/bin/sh
# cross-report.sh prints the size of each cross-compiled binary and checks
# that it is statically linked.
set -eu
status=0
printf '%-16s %10s  %s\n' target bytes linkage
for t in "$@"; do
	f="bin/$t/mender-agent"
	size=$(stat -c %s "$f")
	if command -v file >/dev/null 2>&1; then
		desc=$(file -b "$f")
		case "$desc" in
		*"statically linked"*) link="static" ;;
		*) link="NOT STATIC: $desc"; status=1 ;;
		esac
	else
		link="(install 'file' to check linkage)"
	fi
	printf '%-16s %10s  %s\n' "$t" "$size" "$link"
done
exit $status
