#!/usr/bin/env bash
# docs/flags.md must be what `weir --help` prints today (regenerate with `make docs`).
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/../.."
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
tools/gen_flags_md.sh "$build" "$tmp"
if ! diff -u docs/flags.md "$tmp"; then
  echo "docs/flags.md is out of date: run 'make docs'"
  exit 1
fi
echo "docs/flags.md matches weir --help"
