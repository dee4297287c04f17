#!/usr/bin/env bash
# Prepares, on the development machine, what a bare GPU machine without network access needs to
# build moeforge: the Debian packages of its C++ dependencies, downloaded into .gpu-deps/ (git
# ignores it; the device tool carries it: carry [".gpu-deps"]). scripts/gpu-check.sh unpacks
# them there into a private prefix, never into /.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
apt-get download libdnnl-dev libdnnl2 libyaml-cpp-dev libyaml-cpp0.7 libgtest-dev googletest nlohmann-json3-dev \
  libbenchmark-dev libbenchmark1debian 2>/dev/null
du -sh .
