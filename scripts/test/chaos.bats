#!/usr/bin/env bats
# scripts/chaos.sh at a small size: file-source and file-sink killed with
# kill -9 and restarted, the embedded bus's tmpfs filled and freed, a
# private redis-server restarted mid-stream; nothing lost, and the topic
# holds each record once. `make chaos` runs it larger. The seed is printed:
# scripts/chaos.sh -seed S replays the same kill moments.
# Needs root (the script mounts a tmpfs), redis-server, python3 and
# $CULVERT_BIN/file-source and file-sink (built when missing).

bats_require_minimum_version 1.5.0

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	for m in sources/file-source sinks/file-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
}

@test "chaos: kill -9, a full disk and a bus server restart lose nothing, duplicate nothing in the topic" {
	run --separate-stderr env TMPDIR="$BATS_TEST_TMPDIR" "$ROOT/scripts/chaos.sh" -n 20000 -kills 3 -bin "$CULVERT_BIN"
	printf '# %s\n' "${lines[@]}" >&3
	[ "$status" -eq 0 ] || { echo "$output"; echo "$stderr"; return 1; }
	for phase in embedded redis; do
		[[ "$output" == *"$phase: 0 lost: all 20000 records"* ]] || { echo "no '$phase: 0 lost' line"; return 1; }
		[[ "$output" == *"$phase: 0 duplicated"* ]] || { echo "no '$phase: 0 duplicated' line"; return 1; }
	done
	[[ "$output" == *"embedded: tmpfs filled"* ]]
	[[ "$output" == *"redis: redis-server restarted"* ]]
	! mount | grep -qF "$BATS_TEST_TMPDIR"
}

@test "chaos: a bad option exits 2 naming it" {
	run --separate-stderr "$ROOT/scripts/chaos.sh" -n lots
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"-n"* ]]
}
