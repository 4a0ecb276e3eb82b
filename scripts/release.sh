#!/usr/bin/env bash
# The modules' versions and releases. Published go.mod files carry no replace
# directive (go install MODULE@VERSION refuses one): every module requires
# common at the release version, and go.work alone points that version at
# ./common for local development.
#
#   release.sh set-version X.Y.Z   require common vX.Y.Z everywhere; go.work's replace follows
#   release.sh tidy                go mod tidy in every module (common from ./common, as go.work has it)
#   release.sh tags X.Y.Z          after CI passed on main: tag common/vX.Y.Z, record common's
#                                  checksum in every module's go.sum, commit, and tag vX.Y.Z and
#                                  <module dir>/vX.Y.Z for every module (push them with
#                                  git push origin --tags: the release workflow runs on vX.Y.Z)
#
# scripts/install-check.sh (make install-check, part of make test) proves the
# result installs with GOWORK=off from a module proxy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMON=github.com/culvert-dev/culvert/common
cd "$ROOT"

die() {
	echo "release.sh: $*" >&2
	exit 1
}

modules() { go list -m -f '{{.Dir}}' | sed "s|^$ROOT/||"; }

requires_common() { grep -q "^[[:space:]]*$COMMON v" "$1/go.mod"; }

set_version() {
	local v="v${1#v}" m old
	for m in $(modules); do
		requires_common "$m" || continue
		(cd "$m" && go mod edit -dropreplace="$COMMON" -require="$COMMON@$v")
	done
	for old in $(go work edit -json | jq -r --arg p "$COMMON" '.Replace[]? | select(.Old.Path == $p) | .Old.Version // ""'); do
		go work edit -dropreplace="$COMMON${old:+@$old}"
	done
	go work edit -replace="$COMMON@$v=./common"
	sed -i "s/^VERSION[[:space:]]*?=.*/VERSION    ?= ${v#v}/" Makefile
	echo "release.sh: every module requires $COMMON $v; go.work replaces it with ./common"
}

tidy() {
	local m rel
	for m in $(modules); do
		requires_common "$m" || { (cd "$m" && GOWORK=off go mod tidy); continue; }
		rel="$(realpath --relative-to="$m" common)"
		(cd "$m" && go mod edit -replace="$COMMON=$rel" && GOWORK=off go mod tidy; rc=$?; go mod edit -dropreplace="$COMMON"; exit $rc)
	done
}

tags() {
	local v="v${1#v}" m
	[ -z "$(git status --porcelain)" ] || die "the work tree has changes: commit them first"
	grep -q "^[[:space:]]*$COMMON $v\$" sources/file-source/go.mod || die "run release.sh set-version $v and commit first"
	git tag "common/$v"
	git push origin "common/$v"
	for m in $(modules); do
		[ "$m" = common ] && continue
		requires_common "$m" || continue
		(cd "$m" && GOWORK=off GOPROXY=direct GONOSUMDB=github.com/culvert-dev go get "$COMMON@$v")
	done
	git commit -qam "release $v: common's checksum in every module's go.sum"
	git tag "$v"
	for m in $(modules); do
		[ "$m" = common ] || git tag "$m/$v"
	done
	echo "release.sh: tagged $v; push with: git push origin main --tags"
}

case "${1:-}" in
set-version)
	[ $# -eq 2 ] || die "usage: release.sh set-version X.Y.Z"
	set_version "$2"
	;;
tidy) tidy ;;
tags)
	[ $# -eq 2 ] || die "usage: release.sh tags X.Y.Z"
	tags "$2"
	;;
*) die "usage: release.sh set-version X.Y.Z | tidy | tags X.Y.Z" ;;
esac
