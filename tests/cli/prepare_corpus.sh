#!/usr/bin/env bash
# CTest fixture: the real corpus as token shards for the end-to-end tests.
set -euo pipefail
exe=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$out/kjv/train_000.bin" ] && [ -f "$out/kjv/val_000.bin" ]; then
  echo "corpus: $out/kjv already prepared"
  exit 0
fi
bash "$here/../../scripts/get_corpus.sh" "$out/kjv.txt"
"$exe" data prepare --input "$out/kjv.txt" --output "$out/kjv"
