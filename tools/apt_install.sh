# Sourced by the tools/ensure-*.sh scripts of `make test`: the one way they install what is
# missing. The caller defines `missing` (prints the Debian packages still needed, or nothing)
# and sets `need=$(missing)`; `apt_install_missing WHY` then installs $need with apt-get, but
# only when apt-get is there and we are root or sudo works without a password.
# Returns 0: nothing missing any more; 1: apt-get failed or left something missing (said on
# stderr); 2: cannot install here (the caller says what to install by hand).
# Shell builtins only, so the scripts' decisions can be tested with a fake PATH.

apt_install_missing() {
    command -v apt-get >/dev/null 2>&1 || return 2
    if [ "$(id -u 2>/dev/null)" = "0" ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        as_root="sudo -n"
    else
        return 2
    fi
    echo "make test: installing $need ($1)" >&2
    # Word splitting of $as_root and $need is intended: a command prefix and a package list.
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $as_root apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq \
            --no-install-recommends $need >/dev/null \
        || { echo "make test: apt-get install $need failed" >&2; return 1; }
    need=$(missing)
    [ -z "$need" ] && return 0
    echo "make test: still missing after apt-get install: $need" >&2
    return 1
}
