#!/usr/bin/env bash
# Installs the Debian packages edgc needs to build, test and run. Idempotent: when everything is
# already present it only runs one `dpkg -s` and exits quietly.
#   scripts/install-deps.sh      EDGC_WITH_TORCH=1: also PyTorch (the hook's tests); EDGC_WITH_FUZZ=1: also clang
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 0 ] || { echo "install-deps.sh: takes no arguments (see --help)" >&2; exit 2; }

pkgs="build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev liblapacke-dev
libcmocka-dev bible-kjv bible-kjv-text gnuplot-nox iproute2"
# make test: the PyTorch hook's tests (python/edgc, tests/python)
[ "${EDGC_WITH_TORCH:-0}" = 1 ] && pkgs="$pkgs python3-torch python3-pytest python3-numpy"
# make fuzz: clang with libFuzzer (Debian's clang package ships it)
[ "${EDGC_WITH_FUZZ:-0}" = 1 ] && pkgs="$pkgs clang"

# shellcheck disable=SC2086
if dpkg -s $pkgs >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages and not root; run as root or install: $pkgs" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing missing Debian packages..." >&2
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
echo "install-deps: done" >&2
