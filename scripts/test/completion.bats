#!/usr/bin/env bats
# Every connector of go.work prints shell completion scripts (cobra's
# `completion bash|zsh|fish`); the bash one is valid bash. Needs $CULVERT_BIN
# (built when missing).

bats_require_minimum_version 1.5.0

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	export BIN="${CULVERT_BIN:-$ROOT/bin}"
	make -s -C "$ROOT" modules | tr ' ' '\n' | grep -E '^(sources|sinks)/' | xargs -n1 basename >"$BATS_FILE_TMPDIR/connectors"
	while read -r c; do
		[ -x "$BIN/$c" ] || { make -s -C "$ROOT" build >&2 && break; }
	done <"$BATS_FILE_TMPDIR/connectors"
}

connectors() {
	cat "$BATS_FILE_TMPDIR/connectors"
}

@test "there are connectors" {
	[ "$(connectors | wc -l)" -ge 2 ]
}

@test "completion bash is a non-empty script that bash -n accepts" {
	for c in $(connectors); do
		"$BIN/$c" completion bash >"$BATS_TEST_TMPDIR/$c.bash"
		[ -s "$BATS_TEST_TMPDIR/$c.bash" ]
		grep -q "complete .*$c" "$BATS_TEST_TMPDIR/$c.bash"
		bash -n "$BATS_TEST_TMPDIR/$c.bash"
	done
}

@test "completion zsh and fish are non-empty" {
	for c in $(connectors); do
		for sh in zsh fish; do
			run --separate-stderr "$BIN/$c" completion "$sh"
			[ "$status" -eq 0 ]
			[ -n "$output" ]
		done
	done
}

@test "completion candidates come from the connector (cobra __complete, which the scripts call)" {
	for c in $(connectors); do
		run --separate-stderr "$BIN/$c" __complete meta
		[ "$status" -eq 0 ]
		grep -q '^metadata' <<<"$output"
	done
}
