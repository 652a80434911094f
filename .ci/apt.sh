# shellcheck shell=bash
# Sourced by the .ci install scripts: install the Debian packages that are missing, quietly.

# apt_install_missing NAME PACKAGE...: apt-get installs those of PACKAGE not fully installed;
# apt's output is shown only when it fails. Prints what it did, prefixed with NAME.
apt_install_missing() {
    local name=$1 pkg log start_ns ms
    shift
    local missing=()
    for pkg in "$@"; do
        # dpkg-query prints "install ok installed" only for a fully installed package.
        if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "$name: already installed: $*"
        return 0
    fi
    start_ns=$(date +%s%N)
    echo "$name: installing ${missing[*]}"
    log=$(mktemp)
    # --no-install-recommends keeps the install small; daemons are not started by apt here
    # (policy-rc.d denies init scripts): the start scripts start what they need.
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "$name: apt-get install ${missing[*]} failed" >&2
        return 1
    fi
    rm -f "$log"
    ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
    printf '%s: installed in %d.%01d s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100))
}
