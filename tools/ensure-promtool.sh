#!/bin/sh
# `make test` checks the shipped Prometheus alert rules with `promtool test rules`
# (tests/unit/test_alert_rules.py). promtool comes with Debian's `prometheus` package:
# installs it when missing, but only when apt-get is there and we are root or sudo works
# without a password; otherwise prints exactly what to install and fails. Uses shell
# builtins only, so its decisions can be tested with a fake PATH
# (tests/unit/test_ensure_promtool.py).

command -v promtool >/dev/null 2>&1 && exit 0

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u 2>/dev/null)" = "0" ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        as_root="sudo -n"
    else
        as_root="none"
    fi
    if [ "$as_root" != "none" ]; then
        echo "make test: installing prometheus (its promtool tests the alert rules)" >&2
        # Word splitting of $as_root is intended: a command prefix.
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $as_root apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq \
                --no-install-recommends prometheus >/dev/null \
            || { echo "make test: apt-get install prometheus failed" >&2; exit 1; }
        command -v promtool >/dev/null 2>&1 && exit 0
        echo "make test: still no promtool after apt-get install prometheus" >&2
        exit 1
    fi
fi

echo "make test needs promtool (it tests docker/prometheus/alerts.yml)." >&2
echo "Install it, then run make test again:" >&2
echo "    sudo apt-get install --no-install-recommends prometheus" >&2
echo "(Debian/Ubuntu; elsewhere: promtool from a Prometheus release, https://prometheus.io/download/)" >&2
exit 1
