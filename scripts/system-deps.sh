#!/usr/bin/env bash
# Installs the Debian packages named on the command line when their command is missing (package and
# command share a name): chromium for the headless browser tests (`make test`), wrk for the latency
# benchmarks (`make bench`). Without root it only says what to install.
set -euo pipefail
missing=()
for package in "${@:-chromium}"; do
  command -v "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "system-deps: missing ${missing[*]} and we are not root; install Debian's packages: ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
