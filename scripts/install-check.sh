#!/usr/bin/env bash
# Proves that a connector installs the way a user installs it after a release:
#
#   go install github.com/culvert-dev/culvert/sources/file-source@v0.1.0
#
# with GOWORK=off, from a module proxy, through its published go.mod (no
# replace directive: go install refuses one). The proxy is a local directory
# (GOPROXY=file://...) holding this checkout's modules at version v$VERSION,
# written by scripts/modproxy; third-party modules come from the local module
# cache's download directory, so the check needs no network. It does what
# scripts/release.sh does for a real release (tag common, record its checksum
# in the connector's go.sum, tag the connector), then installs and runs the
# binary.
#
#   scripts/install-check.sh [CONNECTOR_DIR]   (default sources/file-source)
#
# Environment: VERSION (0.1.0).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${VERSION:-0.1.0}"
DIR="${1:-sources/file-source}"
NAME="$(basename "$DIR")"
cd "$ROOT"

die() {
	echo "install-check: $*" >&2
	exit 1
}

# Every published go.mod must be free of replace directives and require
# common at the release version.
bad=0
for m in $(go list -m -f '{{.Dir}}' | sed "s|^$ROOT/||"); do
	if grep -q '^replace\|^[[:space:]]*replace[[:space:]]' "$m/go.mod"; then
		echo "install-check: $m/go.mod has a replace directive (go.work covers local development)" >&2
		bad=1
	fi
	if grep -q 'github.com/culvert-dev/culvert/common v' "$m/go.mod" &&
		! grep -q "github.com/culvert-dev/culvert/common v$VERSION\$" "$m/go.mod"; then
		echo "install-check: $m/go.mod does not require common v$VERSION (run make set-version VERSION=$VERSION)" >&2
		bad=1
	fi
done
[ $bad -eq 0 ] || exit 1

tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cache="$(go env GOMODCACHE)/cache/download"
[ -d "$cache" ] || die "no module cache at $cache: run make build first"

go build -o "$tmp/modproxy" ./scripts/modproxy

# A private module cache, so a stale common@v$VERSION from an earlier run is
# never used, and nothing of this check is left in the shared cache.
export GOWORK=off GOFLAGS=-modcacherw GOMODCACHE="$tmp/modcache" GOPATH="$tmp/gopath"
export GOPROXY="file://$tmp/proxy,file://$cache" GONOSUMDB=github.com/culvert-dev GOSUMDB=off GOTOOLCHAIN=local

"$tmp/modproxy" -out "$tmp/proxy" -version "v$VERSION" common

# The release step: the connector's go.sum gains common's checksum.
cp -r "$DIR" "$tmp/src"
rm -f "$tmp/src/$NAME"
(cd "$tmp/src" && go get "github.com/culvert-dev/culvert/common@v$VERSION") ||
	die "$DIR does not resolve without the workspace (see above)"
"$tmp/modproxy" -out "$tmp/proxy" -version "v$VERSION" "$tmp/src"

module="$(cd "$tmp/src" && go list -m)"
(cd "$tmp" && GOBIN="$tmp/bin" go install -trimpath "$module@v$VERSION") ||
	die "go install $module@v$VERSION failed (see above)"
out="$("$tmp/bin/$NAME" version)"
case "$out" in "$NAME $VERSION "*) ;; *) die "the installed $NAME says \"$out\", not version $VERSION" ;; esac
echo "install-check: go install $module@v$VERSION with GOWORK=off: $out"
"$tmp/bin/$NAME" metadata | grep -q "\"name\": \"$NAME\"" || die "the installed $NAME does not print its metadata"
