#!/usr/bin/env bash
# Installs everything moeforge needs on Debian 12 (idempotent, non-interactive), fetches the
# SmolLM2 model into the cache, then configures and builds the release preset.
#   scripts/setup.sh            # all of it
#   SKIP_MODEL=1 scripts/setup.sh   # no model download
#   SKIP_INTEROP=1 scripts/setup.sh # no llama-cpp-python (the interop tests skip)
#   SKIP_BROWSER=1 scripts/setup.sh # no chromium (the web chat's browser test skips)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates unzip
  libgtest-dev googletest libbenchmark-dev
  libdnnl-dev nlohmann-json3-dev libyaml-cpp-dev libcpp-httplib-dev libedit-dev
  libopenmpi-dev openmpi-bin iproute2 libpcre2-dev
  python3 python3-pip python3-numpy python3-torch python3-jinja2
)
PIP_PACKAGES=(tokenizers gguf safetensors sentencepiece)
PYTHON=/usr/bin/python3

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The reference tests run under Debian's interpreter (it has python3-torch); Debian marks it
# externally managed, so pip needs --break-system-packages for these pure additions.
if ! $PYTHON -c "import tokenizers, gguf, safetensors, sentencepiece" 2>/dev/null; then
  echo "[setup] installing PyPI packages: ${PIP_PACKAGES[*]}"
  $SUDO $PYTHON -m pip install -q --break-system-packages --root-user-action=ignore "${PIP_PACKAGES[@]}"
fi

# llama.cpp for the `interop` tests (compiled once, cached under ~/.cache/moeforge). Without it
# those tests skip and say so; SKIP_INTEROP=1 leaves it out.
if [ "${SKIP_INTEROP:-0}" != 1 ]; then
  scripts/setup-interop.sh || echo "[setup] warning: llama-cpp-python could not be installed; the interop tests will skip"
fi

# Debian's Chromium for the web chat's browser test (label "browser"; ~120 MB, about 10 s here).
# SKIP_BROWSER=1 leaves it out and that test skips.
if [ "${SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null; then
  echo "[setup] installing chromium (the web chat's browser test)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    echo "[setup] warning: chromium could not be installed; the browser test will skip"
fi

if [ "${SKIP_MODEL:-0}" != 1 ]; then
  scripts/fetch-smollm2.sh || echo "[setup] warning: SmolLM2 could not be fetched; its tests will skip"
fi

echo "[setup] configuring and building (preset release)"
cmake --preset release >/dev/null
cmake --build --preset release
echo "[setup] done: build/release/moeforge"
