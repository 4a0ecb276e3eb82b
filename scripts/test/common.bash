# Loaded by every connector's bats tests: `load ../../../scripts/test/common`
# then `culvert_setup` in setup(). Sets SRC and SNK (the file connectors'
# binaries, which end-to-end tests use to feed and read topics), BUS (a fresh
# embedded bus) and T (the test's temporary directory), and clears every
# CULVERT_* variable but CULVERT_BIN so that options come from flags only.

culvert_setup() {
	: "${CULVERT_BIN:?set CULVERT_BIN to the directory of the built connectors}"
	SRC="$CULVERT_BIN/file-source"
	SNK="$CULVERT_BIN/file-sink"
	[ -x "$SRC" ] && [ -x "$SNK" ]
	for v in $(compgen -e | grep '^CULVERT_' || true); do
		[ "$v" = CULVERT_BIN ] || unset "$v"
	done
	BUS="$BATS_TEST_TMPDIR/bus"
	T="$BATS_TEST_TMPDIR"
}

# assert_version BIN NAME: `BIN version` names NAME and the version metadata prints.
assert_version() {
	local out want
	out=$("$1" version)
	want=$("$1" metadata | jq -r .version)
	[[ "$out" =~ ^$2\ ([^ ]+)\ \(go ]] || { echo "version printed: $out"; return 1; }
	[ "${BASH_REMATCH[1]}" = "$want" ] || { echo "version $BASH_REMATCH, metadata $want"; return 1; }
}

# assert_help BIN WORD...: `BIN --help` exits 0 and mentions every WORD.
assert_help() {
	local bin=$1 out
	shift
	out=$("$bin" --help) || { echo "--help failed"; return 1; }
	for want in "$@"; do
		[[ "$out" == *"$want"* ]] || { echo "--help lacks $want"; return 1; }
	done
}

# stop_cleanly PID ERRFILE [SECONDS]: sends SIGTERM to PID, a background
# child of the test, and fails unless it exits with status 0 within SECONDS
# (default 30). Prints ERRFILE, the process's standard error.
stop_cleanly() {
	local pid=$1 err=$2 secs=${3:-30} rc=0
	kill -TERM "$pid"
	for _ in $(seq 1 $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		cat "$err"
		echo "still running ${secs}s after SIGTERM"
		return 1
	fi
	wait "$pid" || rc=$?
	cat "$err"
	[ "$rc" -eq 0 ] || { echo "exit status $rc after SIGTERM"; return 1; }
}
