#!/usr/bin/env bash
# Release files of the connectors (make dist): for every connector and every
# platform, a static binary, its CycloneDX SBOM (cyclonedx-gomod, read from
# the binary's own build information, so it lists exactly the modules linked
# in), and one SHA256SUMS over all of them.
#
#   scripts/dist.sh DIR...        (connector directories, such as sources/file-source)
#
#   dist/file-source_0.1.0_linux_amd64            the binary
#   dist/file-source_0.1.0_linux_amd64.cdx.json   its SBOM
#   dist/linux_amd64/file-source                  the same binary, laid out for
#                                                 multi-arch images (scripts/images.sh)
#   dist/SHA256SUMS
#
# Environment: VERSION (0.1.0), PLATFORMS ("linux/amd64 linux/arm64 darwin/arm64"),
# DIST (dist/ of the repository), CYCLONEDX_GOMOD (the cyclonedx-gomod command).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${VERSION:-0.1.0}"
PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64 darwin/arm64}"
DIST="${DIST:-$ROOT/dist}"
CYCLONEDX_GOMOD="${CYCLONEDX_GOMOD:-cyclonedx-gomod}"
LDFLAGS="-s -w -X github.com/culvert-dev/culvert/common/cli.Version=$VERSION"

[ $# -gt 0 ] || {
	echo "usage: dist.sh CONNECTOR_DIR..." >&2
	exit 2
}
command -v "$CYCLONEDX_GOMOD" >/dev/null || {
	echo "dist.sh: $CYCLONEDX_GOMOD not found (make dist installs it into .tools/bin)" >&2
	exit 1
}
cd "$ROOT"
rm -rf "$DIST"
mkdir -p "$DIST"
for platform in $PLATFORMS; do
	os="${platform%/*}"
	arch="${platform#*/}"
	mkdir -p "$DIST/${os}_${arch}"
	echo "==> $os/$arch"
	# One go build per platform for every connector: packages are compiled once.
	CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath -ldflags "$LDFLAGS" \
		-o "$DIST/${os}_${arch}/" $(printf './%s ' "$@")
	for d in "$@"; do
		name="$(basename "$d")"
		file="${name}_${VERSION}_${os}_${arch}"
		cp "$DIST/${os}_${arch}/$name" "$DIST/$file"
		"$CYCLONEDX_GOMOD" bin -json -version "v$VERSION" -output "$DIST/$file.cdx.json" "$DIST/$file"
	done
done
(cd "$DIST" && find . -maxdepth 1 -type f -name '*_*' ! -name SHA256SUMS -printf '%f\n' | sort | xargs sha256sum >SHA256SUMS)
echo "dist.sh: $(grep -c . "$DIST/SHA256SUMS") files in $DIST with SHA256SUMS"
