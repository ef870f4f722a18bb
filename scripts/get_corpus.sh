#!/usr/bin/env bash
# Writes the King James Bible (public domain; Debian package bible-kjv-text) as plain text
# to OUT (default: data/kjv.txt), verse numbers stripped.
set -euo pipefail
out=${1:-data/kjv.txt}
if ! command -v bible >/dev/null 2>&1; then
  echo "get_corpus: the 'bible' program is missing; run scripts/install_deps.sh as root" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
bible 'Gen1:1-Rev22:21' | sed -E 's/^ +[0-9]+ //' > "$out.tmp"
mv "$out.tmp" "$out"
echo "get_corpus: wrote $(wc -c < "$out") bytes to $out"
