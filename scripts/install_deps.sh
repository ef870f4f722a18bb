#!/usr/bin/env bash
# Installs, from Debian 12's package registry, whatever Lazarus needs to build, test and
# run its embedded default. Packages already present are left alone; run as root.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config make
  libcaf-dev libssl-dev libgloo-dev librocksdb-dev libcapnp-dev capnproto
  libspdlog-dev libtomlplusplus-dev libcli11-dev libxxhash-dev
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev libreadline-dev
  libgtest-dev libbenchmark-dev
  # The embedded default trains on the King James Bible (public domain text).
  bible-kjv bible-kjv-text
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: missing packages: ${missing[*]}" >&2
  echo "install_deps: run this script as root (or install them with apt-get)" >&2
  exit 1
fi

echo "install_deps: installing ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
