#!/usr/bin/env bash
# Runs every fuzz target of the modules in go.work, one after the other, each
# for the given budget (default $FUZZTIME, else 200000x): every
# `func FuzzXxx(f *testing.F)` of a _test.go file, run in its own package
# with `go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime BUDGET`. Targets are
# found, not listed: a new one runs without editing this script. The seed
# corpus of a target (testdata/fuzz/FuzzXxx) runs first; an input that fails
# is saved there by go test, to be committed with its fix.
#
# The budget is a count of executions (5000x) or a whole number of seconds.
# Prefer counts: with a duration, go1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" failure at the deadline on a loaded
# machine (go.dev/issue/75804, fixed in go1.27); a count has no deadline.
#
#   scripts/fuzz.sh            # 200000 executions each (make fuzz)
#   scripts/fuzz.sh 5000x      # make test
#   FUZZFLAGS='-parallel 1' scripts/fuzz.sh 60
#
# Exit status: 0 when every target passed (or there is none), 1 otherwise.
set -euo pipefail
budget=${1:-${FUZZTIME:-200000x}}
GO=${GO:-go}
case $budget in
'' | *[!0-9x]* | x* | *x?*) echo "fuzz.sh: the budget must be a count such as 5000x or whole seconds, not '$budget'" >&2; exit 2 ;;
*x) ;;
*) budget=${budget}s ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# module_of FILE: the directory of the nearest go.mod above FILE.
module_of() {
    local d
    d=$(dirname "$1")
    while [ "$d" != / ] && [ ! -f "$d/go.mod" ]; do d=$(dirname "$d"); done
    echo "$d"
}

mapfile -t modules < <($GO list -m -f '{{.Dir}}')
ran=0
failed=()
for mod in "${modules[@]}"; do
    while IFS= read -r file; do
        # A file of a module nested in this one belongs to that module.
        [ "$(module_of "$file")" = "$mod" ] || continue
        dir=$(dirname "$file")
        pkg=.
        [ "$dir" = "$mod" ] || pkg=./${dir#"$mod"/}
        for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(\([a-z_][A-Za-z0-9_]*\) \*testing\.F).*/\1/p' "$file"); do
            ran=$((ran + 1))
            echo "==> $name in ${dir#"$root"/} ($budget)"
            # shellcheck disable=SC2086 # FUZZFLAGS is a list of flags
            if ! (cd "$mod" && $GO test ${FUZZFLAGS:-} -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" "$pkg"); then
                failed+=("$name in ${dir#"$root"/}")
            fi
        done
    done < <(grep -rlE --include='*_test.go' --exclude-dir=testdata --exclude-dir=vendor --exclude-dir=.tools \
        '^func Fuzz[A-Za-z0-9_]*\([a-z_][A-Za-z0-9_]* \*testing\.F\)' "$mod" | sort || true)
done

if [ "$ran" -eq 0 ]; then
    echo "fuzz.sh: no fuzz target found"
    exit 0
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} of $ran fuzz targets failed:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "fuzz.sh: $ran fuzz targets passed ($budget each)"
