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
