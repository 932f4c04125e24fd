#!/usr/bin/env bash
# Installs the system packages behind CLLM's *optional* features. Nothing in the default build
# needs them: a fresh machine with cargo builds and tests the workspace without this script.
#
#   openblas  -> libopenblas-dev                        (cllm-tensor --features openblas)
#   hwloc     -> libhwloc-dev, libudev-dev, pkg-config   (cllm-lattice / cllm-train --features hwloc)
#
# Usage: scripts/install-system-deps.sh [--check]   (--check: report what is missing, install nothing)
set -euo pipefail

packages=(libopenblas-dev libhwloc-dev libudev-dev pkg-config)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${packages[*]})"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "system packages missing: ${missing[*]}"
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: apt-get not found; install these packages with your system's package manager: ${missing[*]}" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
