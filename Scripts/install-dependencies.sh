#!/usr/bin/env bash
# Installs what building and testing need and a fresh Debian machine with only
# the Swift toolchain lacks: msgpack-c (libmsgpack-dev), libpq (libpq-dev, PostgreSQL's
# client library, for DurableQueue) and pkg-config, from apt;
# Python's msgpack (only for the fixture generator), from pip, when asked with --python;
# faster-fifo (only for queue-bench's faster-fifo columns) and matplotlib (for the charts
# make bench draws, Scripts/charts.py), from pip, when asked with --bench.
# Does nothing for what is already there. Uses sudo when not root.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
pkg-config --exists msgpack 2>/dev/null || missing+=(libmsgpack-dev)
pkg-config --exists libpq 2>/dev/null || missing+=(libpq-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pkg-config --exists msgpack || { echo "msgpack-c is still missing after apt-get install libmsgpack-dev" >&2; exit 1; }
pkg-config --exists libpq || { echo "libpq is still missing after apt-get install libpq-dev" >&2; exit 1; }

# pip install, and again with --break-system-packages where the interpreter is
# Debian's own (bookworm marks it externally managed: PEP 668).
pip_install() {
    python3 -m pip install --quiet "$@" && return 0
    if python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' 2>/dev/null; then
        echo "retrying with --break-system-packages (an externally managed Python)" >&2
        python3 -m pip install --quiet --break-system-packages "$@"
    else
        return 1
    fi
}

for option in "$@"; do
    case "$option" in
    --python)
        if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import msgpack' 2>/dev/null; then
            echo "installing Python's msgpack (pip)" >&2
            pip_install msgpack
        fi
        ;;
    --bench)
        # Optional: without it queue-bench says n/a, and why, in faster-fifo's columns.
        if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import faster_fifo' 2>/dev/null; then
            echo "installing faster-fifo (pip)" >&2
            pip_install faster-fifo || echo "faster-fifo could not be installed (where pip has no wheel it builds" \
                "from source: it needs g++ and Python's headers, python3-dev); queue-bench will say n/a for it" >&2
        fi
        # Not optional: make bench ends by drawing its charts, so it fails here rather than after the runs.
        if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import matplotlib' 2>/dev/null; then
            echo "installing matplotlib (pip)" >&2
            pip_install matplotlib
        fi
        ;;
    *)
        echo "usage: $0 [--python] [--bench]" >&2
        exit 64
        ;;
    esac
done
