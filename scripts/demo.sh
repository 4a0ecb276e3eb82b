#!/usr/bin/env bash
# The orders example on a fresh embedded bus: 1,000 orders through
# file-source (filter and map) and out of file-sink on stdout.
set -euo pipefail
bin=${1:-bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CULVERT_BUS="$work/bus"

go run ./scripts/gen-orders -n 1000 -o "$work/orders.jsonl"
echo "# file-source: 1,000 orders, keeping amount > 50 and adding a priority" >&2
"$bin/file-source" --topic orders --path "$work/orders.jsonl" --log-level warn \
    --filter '.amount > 50' \
    --map '.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)'
echo "# file-sink: the orders topic from the beginning, to stdout" >&2
"$bin/file-sink" --topic orders --path - --from beginning --stop-at-end --log-level warn | tee "$work/out.jsonl"
echo "# $(wc -l < "$work/out.jsonl") of 1000 orders passed the filter;" \
    "HIGH: $(grep -c '"priority":"HIGH"' "$work/out.jsonl")," \
    "MEDIUM: $(grep -c '"priority":"MEDIUM"' "$work/out.jsonl")," \
    "LOW: $(grep -c '"priority":"LOW"' "$work/out.jsonl")" >&2
