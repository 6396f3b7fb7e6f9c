#!/bin/sh
# `make test` checks the shipped Prometheus alert rules with `promtool test rules`
# (tests/unit/test_alert_rules.py). promtool comes with Debian's `prometheus` package:
# installs it when missing, but only when apt-get is there and we are root or sudo works
# without a password; otherwise prints exactly what to install and fails. Uses shell
# builtins only, so its decisions can be tested with a fake PATH
# (tests/unit/test_ensure_promtool.py).

missing() {
    command -v promtool >/dev/null 2>&1 || echo prometheus
}

need=$(missing)
[ -z "$need" ] && exit 0

here=${0%/*}
[ "$here" = "$0" ] && here=.  # run as `sh ensure-….sh` from tools/
. "$here/apt_install.sh"
apt_install_missing "its promtool tests the alert rules"
case $? in 0) exit 0 ;; 1) exit 1 ;; esac

echo "make test needs promtool (it tests docker/prometheus/alerts.yml)." >&2
echo "Install it, then run make test again:" >&2
echo "    sudo apt-get install --no-install-recommends prometheus" >&2
echo "(Debian/Ubuntu; elsewhere: promtool from a Prometheus release, https://prometheus.io/download/)" >&2
exit 1
