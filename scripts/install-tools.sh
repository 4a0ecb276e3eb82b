#!/usr/bin/env bash
# Installs what the tests need when it is missing: bats (bats-core), jq and
# gcc (for the race detector),
# from Debian's packages.
set -euo pipefail
missing=()
command -v bats >/dev/null || missing+=(bats)
command -v jq >/dev/null || missing+=(jq)
command -v gcc >/dev/null || missing+=(gcc) # the race detector needs cgo
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} with apt-get"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
