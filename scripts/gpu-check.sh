#!/usr/bin/env bash
# Runs on a GPU machine (e.g. through the device tool, with .gpu-deps carried): builds moeforge
# with CUDA for the local GPU, then the stages asked for, writing logs and JSON lines to $OUT
# (default ./gpu-out).
#   scripts/gpu-check.sh build test          # the cuda-labelled tests
#   scripts/gpu-check.sh build sanitize      # compute-sanitizer memcheck + racecheck on them
#   scripts/gpu-check.sh build bench         # training (vs PyTorch eager) and decode benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PREFIX=$PWD/.gpu-deps/root
if [ -d .gpu-deps ] && [ ! -d "$PREFIX" ]; then
  mkdir -p "$PREFIX"
  for f in .gpu-deps/*.deb; do dpkg -x "$f" "$PREFIX"; done
fi
export CMAKE_PREFIX_PATH="$PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BUILD=build/gpu
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

for stage in "$@"; do
  case "$stage" in
    build)
      cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEFORGE_CUDA=ON \
        -DMOEFORGE_CUDA_ARCHS="${ARCH:-90}" -DMOEFORGE_PYTHON="$(command -v python3)" \
        -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" > "$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
      cmake --build "$BUILD" -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
      echo "[gpu-check] built for sm_${ARCH:-90}"
      ;;
    test)
      (cd "$BUILD" && ctest -L cuda --output-on-failure) 2>&1 | tee "$OUT/ctest-cuda.log" | tail -40
      ;;
    sanitize)
      for t in "$BUILD"/tests/cuda_*; do
        [ -x "$t" ] || continue
        for tool in memcheck racecheck; do
          echo "== $tool $(basename "$t")"
          compute-sanitizer --tool "$tool" --error-exitcode 9 "$t" --gtest_brief=1 2>&1 | tail -4
        done
      done 2>&1 | tee "$OUT/sanitizer.log"
      ;;
    bench)
      python3 bench/run_cuda_bench.py --config all --bin "$BUILD/bench/bench_cuda_training" 2>&1 | tee "$OUT/bench-training.jsonl"
      python3 bench/run_cuda_bench.py --decode --decode-bin "$BUILD/bench/bench_cuda_decode" 2>&1 \
        | tee "$OUT/bench-decode.jsonl"
      ;;
    *) echo "unknown stage $stage (build, test, sanitize, bench)"; exit 2 ;;
  esac
done
