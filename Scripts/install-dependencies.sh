#!/usr/bin/env bash
# Installs what building and testing need and a fresh Debian machine with only
# the Swift toolchain lacks: msgpack-c (libmsgpack-dev) and pkg-config, from apt;
# Python's msgpack (only for the fixture generator), from pip, when asked with --python.
# Does nothing for what is already there. Uses sudo when not root.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
pkg-config --exists msgpack 2>/dev/null || missing+=(libmsgpack-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pkg-config --exists msgpack || { echo "msgpack-c is still missing after apt-get install libmsgpack-dev" >&2; exit 1; }

if [ "${1:-}" = "--python" ]; then
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import msgpack' 2>/dev/null; then
        echo "installing Python's msgpack (pip)" >&2
        python3 -m pip install --quiet msgpack
    fi
fi
