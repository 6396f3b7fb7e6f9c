#!/bin/sh
# `make test` needs, besides Java/Maven and promtool (their own scripts), three Debian packages
# without which tests would skip: PostgreSQL's server binaries (the tests start a throwaway
# cluster; not needed when PG_DSN names a server), headless Chromium (the dashboard test) and
# docker-compose (the compose file's check). Installs what is missing from Debian, but only when
# apt-get is there and we are root or sudo works without a password; otherwise it stops at once
# naming every missing package, so the suite never half-runs. Shell builtins only, so its
# decisions can be tested with a fake PATH (tests/unit/test_ensure_test_packages.py).

# Where Debian puts the server binaries (/usr/lib/postgresql/<version>/bin/initdb).
POSTGRES_LIB=${POSTGRES_LIB:-/usr/lib/postgresql}

missing() {
    need=""
    if [ -z "${PG_DSN:-}" ] && ! command -v initdb >/dev/null 2>&1; then
        found=""
        for initdb in "$POSTGRES_LIB"/*/bin/initdb; do
            [ -e "$initdb" ] && found=1
        done
        [ -n "$found" ] || need="postgresql"
    fi
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
        || need="$need chromium"
    command -v docker-compose >/dev/null 2>&1 || need="$need docker-compose"
    echo $need
}

need=$(missing)
[ -z "$need" ] && exit 0

here=${0%/*}
[ "$here" = "$0" ] && here=.  # run as `sh ensure-….sh` from tools/
. "$here/apt_install.sh"
apt_install_missing "the tests would skip without them"
case $? in 0) exit 0 ;; 1) exit 1 ;; esac

echo "make test needs PostgreSQL's server binaries, headless Chromium and docker-compose" >&2
echo "(the PostgreSQL tests, the dashboard test and the compose file's check)." >&2
echo "Missing here: $need. Install them, then run make test again:" >&2
echo "    sudo apt-get install --no-install-recommends $need" >&2
echo "(Debian/Ubuntu; elsewhere the same from your package manager, or PG_DSN=postgresql://..." >&2
echo "to test against a PostgreSQL server of your own)" >&2
exit 1
