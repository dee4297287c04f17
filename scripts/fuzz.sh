#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input with libFuzzer (clang) under ASan +
# UBSan, with each harness's dictionary (tests/fuzz/dict). Builds the "fuzz" preset into
# build/fuzz, then runs each harness for SECONDS on a copy of its seed corpus (new inputs stay
# in build/fuzz/corpus, the repository's seeds are not touched) and prints one JSON line per
# harness: executions, coverage, and whether it found anything (a crash, leak, timeout or
# sanitizer report leaves its input in build/fuzz/findings).
#   scripts/fuzz.sh [SECONDS=60] [HARNESS...]      e.g. scripts/fuzz.sh 600 jinja gguf
#   FUZZ_RUNS=1000000 scripts/fuzz.sh 900 gguf      stop at a million executions (or 900 s)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
HARNESSES=("$@")
if [ ${#HARNESSES[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.cpp; do n=$(basename "$f" .cpp); HARNESSES+=("${n#fuzz_}"); done
fi
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt install clang libclang-rt-14-dev libomp-dev)"; exit 2; }
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target $(printf 'fuzz_%s ' "${HARNESSES[@]}")
mkdir -p build/fuzz/findings
status=0
for h in "${HARNESSES[@]}"; do
  corpus=build/fuzz/corpus/$h
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$h"/* "$corpus"/ 2>/dev/null || true
  log=build/fuzz/$h.log
  runs_limit=()
  [ -n "${FUZZ_RUNS:-}" ] && runs_limit=(-runs="$FUZZ_RUNS")
  dict=()
  [ -f tests/fuzz/dict/"$h".dict ] && dict=(-dict=tests/fuzz/dict/"$h".dict)
  set +e
  started=$(date +%s)
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    build/fuzz/tests/fuzz/fuzz_"$h" -max_total_time="$SECONDS_EACH" -max_len=1048576 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix=build/fuzz/findings/"$h"- -print_final_stats=1 "${runs_limit[@]}" "${dict[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - started ))
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  files=$(ls "$corpus" | wc -l)
  echo "{\"harness\":\"$h\",\"seconds\":$elapsed,\"executions\":${runs:-0},\"coverage_edges\":${cov:-0},\"features\":${ft:-0},\"corpus_files\":$files,\"exit\":$rc}"
  [ $rc -eq 0 ] || { status=1; echo "fuzz.sh: $h found something: see $log and build/fuzz/findings/$h-*" >&2; }
done
exit $status
