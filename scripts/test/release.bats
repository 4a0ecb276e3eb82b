#!/usr/bin/env bats
# scripts/release.sh set-version, on a copy of the repository's module files
# (go.work, every go.mod and go.sum, the Makefile): setting the version the
# tree already has changes nothing, and a new version is required by every
# module and is the one version go.work replaces with ./common. The published
# form itself is proved by scripts/install-check.sh (make install-check).

bats_require_minimum_version 1.5.0

setup() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	COPY="$BATS_TEST_TMPDIR/repo"
	mkdir -p "$COPY/scripts"
	(cd "$ROOT" && git ls-files -- go.work go.work.sum Makefile '*go.mod' '*go.sum' | tar -cf - -T -) | tar -xf - -C "$COPY"
	cp "$ROOT/scripts/release.sh" "$COPY/scripts/"
	VERSION="$(sed -n 's/^VERSION[[:space:]]*?=[[:space:]]*//p' "$ROOT/Makefile")"
	[ -n "$VERSION" ]
}

@test "set-version with the tree's own version changes nothing" {
	run "$COPY/scripts/release.sh" set-version "$VERSION"
	[ "$status" -eq 0 ]
	changed="$( (cd "$ROOT" && git ls-files -- go.work Makefile '*go.mod') | while read -r f; do
		cmp -s "$ROOT/$f" "$COPY/$f" || echo "$f"
	done)"
	echo "changed: $changed"
	[ -z "$changed" ]
}

@test "set-version 9.8.7: every module requires common v9.8.7, go.work replaces only that version, the Makefile says 9.8.7" {
	run "$COPY/scripts/release.sh" set-version 9.8.7
	[ "$status" -eq 0 ]
	n=0
	while read -r m; do
		grep -q '^[[:space:]]*github.com/culvert-dev/culvert/common v' "$m" || continue
		grep -q '^[[:space:]]*github.com/culvert-dev/culvert/common v9.8.7$' "$m"
		! grep -q '^replace' "$m"
		n=$((n + 1))
	done < <(find "$COPY" -name go.mod)
	[ "$n" -ge 15 ]
	[ "$(grep -c '^replace github.com/culvert-dev/culvert/common' "$COPY/go.work")" -eq 1 ]
	grep -q '^replace github.com/culvert-dev/culvert/common v9.8.7 => ./common$' "$COPY/go.work"
	grep -q '^VERSION[[:space:]]*?= 9.8.7$' "$COPY/Makefile"
}
