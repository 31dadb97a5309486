#!/usr/bin/env bash
# Runs every test suite against the binaries in BUILD (default: build) and prints one closing
# line "N passed, N failed". Exit status is non-zero when anything failed.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
passed=0
failed=0
failures=()

details=$(mktemp)  # the failing lines of every failed suite, repeated after the fuzz output

run_suite() {  # name, command...
  local name=$1 log
  shift
  echo "=== $name"
  log=$(mktemp)
  if "$@" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    { echo "--- $name"; grep -E "FAIL|Error|error|Traceback|Assert" "$log" | head -20; tail -5 "$log"; } >>"$details"
  fi
  rm -f "$log"
}

export WEIR_BIN="$PWD/$BUILD/weir" WEIR_LOAD_BIN="$PWD/$BUILD/weir-load"

# GoogleTest: each test counts; parse the summary so the closing line is per test.
gtest_log=$(mktemp)
"$BUILD/weir-tests" --gtest_brief=1 2>&1 | tee "$gtest_log"
gtest_status=${PIPESTATUS[0]}
g_pass=$(grep -oP '\[  PASSED  \] \K[0-9]+' "$gtest_log" | tail -1)
g_fail=$(grep -oP '\[  FAILED  \] \K[0-9]+(?= tests?, listed below)' "$gtest_log" | tail -1)
passed=$((passed + ${g_pass:-0}))
failed=$((failed + ${g_fail:-0}))
if [ "$gtest_status" -ne 0 ] && [ -z "${g_fail:-}" ]; then
  failed=$((failed + 1))
  failures+=("weir-tests exited $gtest_status")
fi
if [ -n "${g_fail:-}" ] || [ "$gtest_status" -ne 0 ]; then
  { echo "--- weir-tests"; grep -E "^\[  FAILED  \]|Failure|Expected|Which is" "$gtest_log" | head -30; } >>"$details"
fi
rm -f "$gtest_log"

# Interop and end-to-end suites: each script is one suite.
for t in tests/interop/*_test.sh tests/interop/*_test.py; do
  [ -e "$t" ] || continue
  case "$t" in
    *.sh) run_suite "$t" bash "$t" "$BUILD" ;;
    *.py) run_suite "$t" /usr/bin/python3 "$t" "$BUILD" ;;  # Debian's, with python3-websockets
  esac
done

# Every libFuzzer target for FUZZ_SECONDS (30) on its seed corpus; sanitizer runs skip it.
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  run_suite fuzz-smoke make --no-print-directory fuzz-smoke
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "=== what failed"
  cat "$details"
  echo "failed: ${failures[*]}"
fi
rm -f "$details"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
