#!/usr/bin/env bash
# Configures and builds Lazarus into BUILD_DIR (default: build). Extra arguments go to
# cmake's configure step, e.g. scripts/build.sh -DLAZARUS_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-2}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@"
cmake --build "$build_dir" -j "$jobs"
