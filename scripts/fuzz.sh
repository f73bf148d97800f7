#!/usr/bin/env bash
# fuzz.sh DURATION: run every fuzz target in the module for DURATION each.
# A target that finds a crash fails the run.
set -euo pipefail
t=${1:-5s}
n=0
for dir in $(go list -f '{{.Dir}}' ./...); do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz: $f in ${dir#$PWD/} for $t"
    (cd "$dir" && go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" . >/tmp/fuzz.$$.log 2>&1) || { cat /tmp/fuzz.$$.log; exit 1; }
    n=$((n+1))
  done
done
echo "fuzz: $n targets ran, none failed"
