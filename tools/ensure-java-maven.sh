#!/bin/sh
# `make test` runs Apache Kafka and Cassandra from Maven Central: it needs Java 17+ and Maven.
# Installs what is missing from Debian (default-jre-headless, maven), but only when apt-get is
# there and we are root or sudo works without a password; otherwise prints exactly what to
# install and fails. Uses shell builtins only, so its decisions can be tested with a fake PATH
# (tests/unit/test_ensure_java_maven.py).

missing() {
    need=""
    java_out=$(java -version 2>&1) || java_out=""
    case "$java_out" in
        *'version "'*)
            major=${java_out#*version \"}
            major=${major%%[!0-9]*}
            ;;
        *) major="" ;;
    esac
    if [ -z "$major" ] || [ "$major" -lt 17 ]; then
        need="default-jre-headless"
    fi
    command -v mvn >/dev/null 2>&1 || need="$need maven"
    echo $need
}

need=$(missing)
[ -z "$need" ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u 2>/dev/null)" = "0" ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        as_root="sudo -n"
    else
        as_root="none"
    fi
    if [ "$as_root" != "none" ]; then
        echo "make test: installing $need (Java 17+ and Maven run the test brokers)" >&2
        # Word splitting of $as_root and $need is intended: a command prefix and a package list.
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $as_root apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq \
                --no-install-recommends $need >/dev/null \
            || { echo "make test: apt-get install $need failed" >&2; exit 1; }
        need=$(missing)
        [ -z "$need" ] && exit 0
        echo "make test: still missing after apt-get install: $need" >&2
        exit 1
    fi
fi

echo "make test needs Java 17+ and Maven (they run Apache Kafka and Cassandra for the tests)." >&2
echo "Missing here: $need. Install them, then run make test again:" >&2
echo "    sudo apt-get install --no-install-recommends $need" >&2
echo "(Debian/Ubuntu; elsewhere: a Java 17+ JRE and Apache Maven from your package manager)" >&2
exit 1
