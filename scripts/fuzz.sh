#!/usr/bin/env bash
# fuzz.sh DURATION: run every fuzz target in the module for DURATION each.
# A target that finds a crash fails the run.
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" at the end of -fuzztime, having found nothing: a race
# between the deadline and its workers (go.dev/issue/75804, fixed in Go
# 1.27). A real finding always writes its input to testdata/fuzz/TARGET/. So
# a failure that says exactly that and wrote no new input is a flake of the
# toolchain: the target's corpus is then replayed (go test -run) and must
# pass, the target is fuzzed again, and the flake is reported. Any other
# failure, or the same flake three times running, fails the run (twice
# running happened once, on ipc/sockcall's FuzzDecode, at 70,000 inputs a
# second).
set -euo pipefail
t=${1:-5s}
n=0
flakes=0
log=/tmp/fuzz.$$.log
trap 'rm -f "$log"' EXIT

# corpus lists a target's saved inputs.
corpus() { ls "$1/testdata/fuzz/$2" 2>/dev/null | sort || true; }

# fuzz DIR TARGET: one fuzzing run; 0 passed, 1 failed, 2 the toolchain's flake.
fuzz() {
  local before after
  before=$(corpus "$1" "$2")
  if (cd "$1" && go test -run '^$' -fuzz "^$2\$" -fuzztime "$t" . >"$log" 2>&1); then
    return 0
  fi
  after=$(corpus "$1" "$2")
  if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$log" &&
    ! grep -q 'Failing input written' "$log"; then
    return 2
  fi
  return 1
}

for dir in $(go list -f '{{.Dir}}' ./...); do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz: $f in ${dir#$PWD/} for $t"
    rc=0; fuzz "$dir" "$f" || rc=$?
    tries=1
    while [ "$rc" = 2 ] && [ "$tries" -lt 3 ]; do
      echo "fuzz: $f: the toolchain's deadline race (go.dev/issue/75804), no input written; replaying its corpus and fuzzing again"
      (cd "$dir" && go test -count=1 -run "^$f\$" . >"$log" 2>&1) || { cat "$log"; exit 1; }
      flakes=$((flakes+1))
      tries=$((tries+1))
      rc=0; fuzz "$dir" "$f" || rc=$?
    done
    if [ "$rc" != 0 ]; then
      cat "$log"
      exit 1
    fi
    n=$((n+1))
  done
done
echo "fuzz: $n targets ran, none failed ($flakes deadline races of the toolchain retried)"
