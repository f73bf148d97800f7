#!/usr/bin/env bash
# deafapp.sh BIN [SECONDS]: what an application that never reads costs the
# servers that answer it, on the shm transport (docs/SECURITY.md). It
# starts the default topology's servers with BIN (as root) and beside them
# a hostile application linked to syscall, tcp and ip; it reads each of those
# servers' CPU time and timeslices (/proc/PID/task/*/schedstat: a
# timeslice is a wake-up) over SECONDS, idle; then lets the application
# attack for 2 s (random socket calls, whose replies fill its rings), stops
# it (SIGSTOP: it never reads again) and reads them again over SECONDS.
# Compare two binaries by running it for each, alternating.
set -euo pipefail
BIN=$(realpath "$1")
SECS=${2:-10}
dir=$(mktemp -d)
state=$dir/state
cat >"$dir/deaf.topo" <<TOPO
name deaf
transport shm
process syscall
process tcp
process udp
process ip
process pf
process driver
process nic
process evil role hostile args --attack 600s --attack-when $dir/start
link syscall tcp
link syscall udp
link tcp ip
link udp ip
link ip pf
link pf driver
link driver nic
link evil syscall
link evil tcp
link evil ip
TOPO
"$BIN" --state-dir "$state" up --topology "$dir/deaf.topo" >"$dir/up.log" 2>&1 &
uppid=$!
cleanup() {
	"$BIN" --state-dir "$state" down >/dev/null 2>&1 || true
	kill "$uppid" 2>/dev/null || true
	wait "$uppid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 600); do
	grep -q '^up: ' "$dir/up.log" && break
	sleep 0.1
done
grep -q '^up: ' "$dir/up.log" || { cat "$dir/up.log" >&2; exit 1; }
status() { "$BIN" --state-dir "$state" status --json | jq -r ".processes[] | select(.name==\"$1\") | .$2"; }
usage() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{c += $1; n += $3} END {print c, n}'; }
measure() {
	declare -A before
	for p in syscall tcp ip; do before[$p]=$(usage "$(status $p pid)"); done
	sleep "$SECS"
	for p in syscall tcp ip; do
		read -r c1 n1 <<<"${before[$p]}"
		read -r c2 n2 <<<"$(usage "$(status $p pid)")"
		awk -v l="$1" -v p="$p" -v c=$((c2 - c1)) -v n=$((n2 - n1)) -v s="$SECS" \
			'BEGIN {printf "%-5s %-8s cpu %6.2f ms/s  timeslices %6.0f /s\n", l, p, c / 1e6 / s, n / s}'
	done
}
sleep 1
measure idle
touch "$dir/start"
for _ in $(seq 100); do
	grep -q 'attack starts' "$dir/up.log" && break
	sleep 0.1
done
sleep 2
evil=$(status evil pid)
kill -STOP "$evil"
sleep 1
measure deaf
for p in syscall tcp; do
	echo "$p: $(curl -s "localhost:$(status $p metrics_port)/metrics" | awk '/^newtsim_server_deferred_sends_total/ {print $2}') messages deferred"
done
kill -CONT "$evil"
