#!/usr/bin/env bash
# Writes docs/flags.md from `weir --help`, so the flag reference cannot drift from the binary.
# Usage: tools/gen_flags_md.sh [BUILD_DIR] [OUTPUT]
set -euo pipefail
build=${1:-build}
out=${2:-docs/flags.md}
{
  echo "# Flags"
  echo
  echo "Generated from \`weir --help\` by \`make docs\`; do not edit by hand."
  echo
  echo '```'
  "$build/weir" --help
  echo '```'
} > "$out"
