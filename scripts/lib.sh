# shellcheck shell=bash
# scripts/lib.sh: helpers shared by .ci/run, scripts/test and scripts/demo. Source it; don't run it.

# Debian packages needed to build hubkey (add new build dependencies here, once).
# shellcheck disable=SC2034 # used by the scripts that source this file
HUBKEY_BUILD_PACKAGES=(pkg-config build-essential ca-certificates libdbus-1-dev
    libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev)

# banner TEXT...: a short heading before each step.
banner() { printf '\n==> %s\n' "$*"; }

# run CMD...: print a banner naming CMD, then run it.
run() { banner "$*"; "$@"; }

# apt_ensure PKG...: install the Debian packages that are not installed yet.
# Does nothing (no apt-get update either) when all of them already are.
apt_ensure() {
    local pkg missing=()
    if ! command -v dpkg-query >/dev/null; then
        echo "note: not a Debian system; make sure these are installed: $*" >&2
        return 0
    fi
    for pkg in "$@"; do
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] \
            || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || {
            echo "error: missing packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
            return 1
        }
        sudo=(sudo)
    fi
    banner "installing missing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# require_cargo: make sure cargo is on PATH (rustup's usual place included), or explain.
require_cargo() {
    if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null || {
        echo "error: cargo (the Rust toolchain) is not installed." >&2
        echo "Install it with rustup (https://rustup.rs), open a new shell, and run this again." >&2
        return 1
    }
}

# require_node: make sure node and npm exist (the UI is built with them), or explain.
require_node() {
    command -v npm >/dev/null || {
        echo "error: Node.js and npm are not installed; the desktop UI is built with them." >&2
        echo "Install them (apt-get install nodejs npm, or your usual way) and run this again." >&2
        return 1
    }
}

# require_tauri_driver: install tauri-driver (the WebDriver bridge of the GUI tests) if missing.
require_tauri_driver() {
    command -v tauri-driver >/dev/null || [[ -x "$HOME/.cargo/bin/tauri-driver" ]] \
        || run cargo install tauri-driver --locked --version '^2'
}
