#!/bin/sh
# `make install` builds the compiled per-item core (bridge/codec/_core.c) with a C compiler
# and Python's headers. Installs them from Debian when missing (gcc, python3-dev), but only
# when apt-get is there and we are root or sudo works without a password (tools/apt_install.sh).
# Never fails: without them the install goes on, and the bridge runs its Python
# implementation with the same results (slower); this says why and what to install.
# Usage: sh tools/ensure-compiler.sh PYTHON

python=${1:-python3}

missing() {
    command -v gcc >/dev/null 2>&1 || printf 'gcc '
    include=$("$python" -c 'import sysconfig; print(sysconfig.get_path("include"))' 2>/dev/null)
    [ -n "$include" ] && [ -f "$include/Python.h" ] || printf 'python3-dev'
}

need=$(missing)
[ -z "$need" ] && exit 0

here=${0%/*}
[ "$here" = "$0" ] && here=.  # run as `sh ensure-….sh` from tools/
. "$here/apt_install.sh"
apt_install_missing "they build the compiled core"
[ $? -eq 0 ] && exit 0

echo "make install: no $need here, so the compiled core is not built; the bridge runs its" >&2
echo "Python implementation (same results, several times the CPU per item). To build it:" >&2
echo "    sudo apt-get install --no-install-recommends gcc python3-dev   (then make install)" >&2
exit 0
