#!/usr/bin/env bash
# Runs every response-parser fuzz target for a short, bounded time. Plain
# `go test` already runs their seed corpora; this explores a little beyond.
set -euo pipefail
fuzztime="${1:-3s}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pkg=./internal/exchange/
targets=$(go test -vet=off -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
[[ -n "$targets" ]] || { echo "no fuzz targets found in $pkg"; exit 1; }
n=0
for t in $targets; do
  go test -vet=off -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -parallel 2 "$pkg" >/tmp/fuzz-$$.log 2>&1 || { cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1; }
  n=$((n+1))
done
rm -f /tmp/fuzz-$$.log
echo "fuzz: ${n} targets ran ${fuzztime} each without failure"
