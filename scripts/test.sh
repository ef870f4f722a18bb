#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD_DIR=${BUILD_DIR:-build} bash scripts/build.sh -DLAZARUS_WERROR=ON
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j 2 --timeout 900 "$@"
