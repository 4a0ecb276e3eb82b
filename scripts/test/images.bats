#!/usr/bin/env bats
# The connector images (scripts/images.sh, make images): the file-source image
# is built with whichever engine can build here (docker or podman, podman being
# installed with apt-get when neither works), its root filesystem exported from
# a created (never started) container, and its binary run there with chroot as
# the image's user. No engine is a failure, never a skip. Needs root or
# passwordless sudo (chroot), jq, and $CULVERT_BIN/file-source (built when missing).

bats_require_minimum_version 1.5.0

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	export BIN="${CULVERT_BIN:-$ROOT/bin}"
	[ -x "$BIN/file-source" ] || make -s -C "$ROOT" build >&2
	# A tag of its own: concurrent runs and `make images` are left alone.
	export IMAGE_PREFIX="culvert-test"
	export VERSION="0.0.0-test$$"
	export IMAGE="$IMAGE_PREFIX/file-source:$VERSION"
	export RFS="$BATS_FILE_TMPDIR/rootfs"
	ENGINE_FILE="$BATS_FILE_TMPDIR/engine"
	export ENGINE_FILE
	"$ROOT/scripts/images.sh" engine >"$ENGINE_FILE"
	"$ROOT/scripts/images.sh" build sources/file-source >&2
	"$ROOT/scripts/images.sh" export "$IMAGE" >"$BATS_FILE_TMPDIR/rootfs.tar"
	mkdir "$RFS"
	tar -x -f "$BATS_FILE_TMPDIR/rootfs.tar" -C "$RFS" --no-same-owner
}

teardown_file() {
	if [ -s "${ENGINE_FILE:-}" ]; then
		# shellcheck disable=SC2046
		$(cat "$ENGINE_FILE") rmi "$IMAGE" >/dev/null 2>&1 || true
	fi
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo -n "$@"
	fi
}

inspect() {
	# shellcheck disable=SC2046
	$(cat "$ENGINE_FILE") image inspect --format "$1" "$IMAGE"
}

@test "every connector's Dockerfile is generated from the one template" {
	mapfile -t conns < <(make -s -C "$ROOT" modules | tr ' ' '\n' | grep -E '^(sources|sinks)/')
	[ "${#conns[@]}" -ge 2 ]
	run "$ROOT/scripts/images.sh" check "${conns[@]}"
	[ "$status" -eq 0 ]
}

@test "the image's file-source runs chrooted in its root filesystem as the image's user" {
	[ -x "$RFS/file-source" ]
	run --separate-stderr as_root chroot --userspec=65532:65532 "$RFS" /file-source metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "file-source" and .direction == "source"'
}

@test "the image has no shell; it holds the binary, the CA bundle and the data directory" {
	run bash -c "cd '$RFS' && find . -mindepth 1 -not -path './proc*' -not -path './sys*' -not -path './dev*' -not -name .containerenv | sort"
	[ "$status" -eq 0 ]
	[ ! -e "$RFS/bin/sh" ]
	grep -qx './file-source' <<<"$output"
	grep -qx './etc/ssl/certs/ca-certificates.crt' <<<"$output"
	grep -qx './data' <<<"$output"
}

@test "the CA bundle is present and holds certificates" {
	[ -s "$RFS/etc/ssl/certs/ca-certificates.crt" ]
	[ "$(grep -c 'BEGIN CERTIFICATE' "$RFS/etc/ssl/certs/ca-certificates.crt")" -gt 10 ]
}

@test "the image runs as a numeric non-root user that owns /data" {
	run inspect '{{.Config.User}}'
	[ "$status" -eq 0 ]
	[ "$output" = "65532:65532" ]
	tar -tv --numeric-owner -f "$BATS_FILE_TMPDIR/rootfs.tar" | grep -E '^d.* 65532/65532 .* \.?/?data/?$'

}

@test "the image's entrypoint, environment and OCI labels" {
	run inspect '{{json .Config.Entrypoint}}'
	[ "$output" = '["/file-source"]' ]
	run inspect '{{json .Config.Labels}}'
	[ "$status" -eq 0 ]
	echo "$output" | jq -e --arg v "$VERSION" '."org.opencontainers.image.title" == "file-source"
		and ."org.opencontainers.image.version" == $v
		and (."org.opencontainers.image.source" | startswith("https://"))'
	run inspect '{{json .Config.Env}}'
	echo "$output" | jq -e 'index("XDG_DATA_HOME=/data") != null'
}
