#!/usr/bin/env bash
# Installs the tools the test suite and the benchmark compare against or drive, from Debian's
# packages. Idempotent and quiet; safe to run on every CI start.
set -euo pipefail

packages=(
  skopeo umoci docker-registry debootstrap pigz libarchive-tools tar gzip zstd
  python3 openssl apache2-utils time podman tmux
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "missing test tools: ${missing[*]}; run scripts/install-test-deps.sh as root" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq </dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
echo "installed: ${missing[*]}"
