#!/usr/bin/env bash
# Installs what is missing, builds, prepares the corpus and trains the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
if [ ! -f data/kjv/train_000.bin ]; then
  bash scripts/get_corpus.sh data/kjv.txt
  ./build/lazarus data prepare --input data/kjv.txt --output data/kjv
fi
exec ./build/lazarus run --state-dir runs/quickstart "$@"
