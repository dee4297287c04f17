#!/usr/bin/env bash
# Unpacks Debian's libopenblas0-pthread into ~/.cache/moeforge/openblas/ without installing it,
# so that Debian's PyTorch 1.13 (python3-torch, which does its GEMMs through libblas.so.3) can be
# measured on OpenBLAS by the benchmark drivers (bench/bench_env.py puts that directory first on
# the peer's LD_LIBRARY_PATH) while the system keeps whatever BLAS it has. Installing the package
# (apt-get install libopenblas0-pthread) works too, but switches the system's libblas.so.3.
# A no-op when the library is already there.
set -euo pipefail
CACHE="${MOEFORGE_CACHE:-$HOME/.cache/moeforge}"
DIR="$CACHE/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread"
if [ -e "$DIR/libblas.so.3" ]; then
  echo "[openblas] $DIR already present"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download user must be able to write there
(cd "$work" && apt-get download -q libopenblas0-pthread)
mkdir -p "$CACHE/openblas"
dpkg -x "$work"/libopenblas0-pthread_*.deb "$CACHE/openblas"
echo "[openblas] $DIR"
