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

here=${0%/*}
[ "$here" = "$0" ] && here=.  # run as `sh ensure-….sh` from tools/
. "$here/apt_install.sh"
apt_install_missing "Java 17+ and Maven run the test brokers"
case $? in 0) exit 0 ;; 1) exit 1 ;; esac

echo "make test needs Java 17+ and Maven (they run Apache Kafka and Cassandra for the tests)." >&2
echo "Missing here: $need. Install them, then run make test again:" >&2
echo "    sudo apt-get install --no-install-recommends $need" >&2
echo "(Debian/Ubuntu; elsewhere: a Java 17+ JRE and Apache Maven from your package manager)" >&2
exit 1
