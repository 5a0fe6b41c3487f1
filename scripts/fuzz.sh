#!/usr/bin/env bash
# Runs every fuzz target of the module for a short while: $1 is go test's
# -fuzztime, default 10000x (inputs). Prefer a count to a duration: with a
# duration, Go 1.26's fuzzing coordinator can fail a target with a bare
# "context deadline exceeded" as the time runs out, no input at fault
# (golang/go#75804, fixed in Go 1.27).
set -euo pipefail
fuzztime=${1:-10000x}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
  for t in $targets; do
    echo "fuzz $pkg $t ($fuzztime)"
    go test -run='^$' -fuzz="^${t}\$" -fuzztime="$fuzztime" "$pkg"
  done
done
