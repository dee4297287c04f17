#!/usr/bin/env bash
# Installs the anchors the `interop` tests run moeforge's files through: llama.cpp by way of the
# PyPI package llama-cpp-python (compiled here: a few minutes on two cores, then cached) and
# transformers 4.44 (the last to run on Debian's torch 1.13), in a virtual environment that sees
# Debian's packages (numpy, torch) so nothing in the system Python changes; and the official
# `openai` client for the server tests. Idempotent: a second
# run with both importable does nothing.
#   scripts/setup-interop.sh      -> ~/.cache/moeforge/interop-venv/bin/python
# llama.cpp's native CPU build can emit AMX instructions that fault on some VMs, so the CPU
# backend is built for a fixed AVX2 target instead of -march=native.
set -euo pipefail
VENV="${MOEFORGE_INTEROP_VENV:-$HOME/.cache/moeforge/interop-venv}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
TRANSFORMERS_VERSION=4.44.2
# The official OpenAI client, which the `moeforge serve` tests drive the server with.
OPENAI_VERSION=3.63.0
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import llama_cpp, transformers, openai" 2>/dev/null; then
  echo "[interop] llama-cpp-python, transformers and openai already in $VENV"
  exit 0
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  "$VENV/bin/pip" install -q --no-cache-dir "transformers==$TRANSFORMERS_VERSION" "openai==$OPENAI_VERSION"
  echo "[interop] added transformers $TRANSFORMERS_VERSION and openai $OPENAI_VERSION to $VENV"
  exit 0
fi
echo "[interop] building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into $VENV (compiles llama.cpp; a few minutes)"
/usr/bin/python3 -m venv --system-site-packages "$VENV"
start=$(date +%s)
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  "$VENV/bin/pip" install -q --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" \
  "transformers==$TRANSFORMERS_VERSION" "openai==$OPENAI_VERSION"
"$VENV/bin/python" -c "import llama_cpp, transformers, openai
print('[interop] llama-cpp-python', llama_cpp.__version__, 'transformers', transformers.__version__)"
echo "[interop] installed in $(( $(date +%s) - start )) s"
