#!/usr/bin/env bash
# Install the Debian packages precache's tests and demo need, only when missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
need=()
for spec in "$@"; do
  bin=${spec%%:*}; pkg=${spec#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "precache needs Debian packages: run  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo ">> apt-get install -y ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
