# shellcheck shell=bash
# scripts/lib.sh: helpers shared by scripts/test, scripts/demo, scripts/bench and .ci/run.
# Source it; don't run it. Each script installs what it needs when it is missing, from the
# lists below: one list per purpose, so a new dependency is added once, where it belongs.

# shellcheck disable=SC2034 # the lists are used by the scripts that source this file

# Debian packages that build hubkey: the Tauri app links WebKitGTK, GTK, the tray library
# (libayatana-appindicator) and librsvg; the keyring crate links libdbus; ring builds C.
HUBKEY_BUILD_PACKAGES=(pkg-config build-essential ca-certificates libdbus-1-dev
    libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev)

# Debian packages the tests run against, besides the build packages:
# - docker-registry (the CNCF distribution registry), skopeo and podman: the real registry
#   peers of the e2e tests (the docker CLI too: see ensure_docker_cli);
# - gnome-keyring, libsecret-tools (secret-tool) and the D-Bus daemon and tools (dbus-daemon,
#   dbus-send, dbus-monitor; dbus-x11): a private Secret Service for the keyring tests;
# - xvfb and webkit2gtk-driver (WebKitWebDriver): the desktop app under a virtual display,
#   driven through tauri-driver; xdotool answers its native save dialog;
# - python3-dbus and python3-gi: the tests read the app's tray and play the desktop's
#   notification server; python3-venv holds scripts/schemathesis' pinned schemathesis;
# - curl: the tests wait for the registry with it; sqlite3: to look into hubkeyd's
#   database when a test fails;
# - wrk: scripts/bench's load generator, so a test machine can run the benchmark too;
# - chromium and chromium-driver: the e2e tests drive hubkeyd's device verification page
#   (/device) in a real browser through WebDriver;
# - postgresql: hubkeyd's api suite runs a second time on PostgreSQL; the tests run initdb and
#   pg_ctl themselves in a temporary directory (they use no cluster or service of the system).
HUBKEY_TEST_PACKAGES=(docker-registry skopeo podman gnome-keyring libsecret-tools
    dbus-daemon dbus-bin dbus-x11 xvfb webkit2gtk-driver xdotool python3-dbus python3-gi
    python3-venv sqlite3 curl wrk adduser chromium chromium-driver postgresql)

# Debian packages scripts/demo runs the product with, besides the build packages: the
# registry behind hubkeyd, skopeo for the demo push, curl and jq for its checks (and the
# README's API examples).
HUBKEY_DEMO_PACKAGES=(docker-registry skopeo curl jq)

# Debian packages that cross-build the desktop side for Windows (x86_64-pc-windows-gnu) and
# run what can run of it: ring's C parts need the MinGW-w64 compiler; Wine runs the Windows
# credential helper against its Credential Manager (tests/e2e/wine.rs).
HUBKEY_CROSS_PACKAGES=(gcc-mingw-w64-x86-64 wine64)

# The Windows target the desktop crates are compiled and linted for (scripts/test).
HUBKEY_WINDOWS_TARGET=x86_64-pc-windows-gnu

# The macOS targets the desktop crates that need no Apple SDK are linted for (scripts/test).
HUBKEY_MACOS_TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)

# banner TEXT...: a short heading before each step.
banner() { printf '\n==> %s\n' "$*"; }

# run CMD...: print a banner naming CMD, then run it.
run() { banner "$*"; "$@"; }

# as_root CMD...: run CMD as root (through sudo when not root), or explain and fail.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "error: run as root, or install sudo: $*" >&2
        return 1
    fi
}

# apt_missing PKG...: prints the packages of the list that are not installed, one a line.
apt_missing() {
    local pkg
    for pkg in "$@"; do
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] \
            || echo "$pkg"
    done
}

# apt_ensure PKG...: install the Debian packages that are not installed yet.
# Does nothing (no apt-get update either) when all of them already are.
apt_ensure() {
    if ! command -v dpkg-query >/dev/null; then
        echo "note: not a Debian system; make sure these are installed: $*" >&2
        return 0
    fi
    local missing
    # The lists overlap (the demo needs some of the tests' peers): ask for each package once.
    mapfile -t missing < <(apt_missing "$@" | awk '!seen[$0]++')
    ((${#missing[@]} == 0)) && return 0
    banner "installing missing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
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

# cargo_ensure COMMAND CRATE VERSION: `cargo install CRATE --version VERSION --locked` when
# COMMAND is on neither PATH nor cargo's bin folder. That folder (CARGO_HOME/bin) goes on
# PATH, so the tests find what was installed there.
cargo_ensure() {
    local command=$1 crate=$2 version=$3
    local bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    [[ ":$PATH:" == *":$bin:"* ]] || export PATH="$PATH:$bin"
    command -v "$command" >/dev/null && return 0
    run cargo install "$crate" --locked --version "$version"
    command -v "$command" >/dev/null || {
        echo "error: $command is still not on PATH after installing $crate into $bin" >&2
        return 1
    }
}

# require_nextest: install cargo-nextest (the test runner of scripts/test) if missing.
require_nextest() { cargo_ensure cargo-nextest cargo-nextest '^0.9'; }

# require_tauri_driver: install tauri-driver (the WebDriver bridge of the GUI tests) if
# missing; major 2, as the registry also serves 3.0 alphas.
require_tauri_driver() { cargo_ensure tauri-driver tauri-driver '^2'; }

# ensure_rust_target TRIPLE: add the Rust standard library for TRIPLE with rustup if missing.
ensure_rust_target() {
    local triple=$1
    command -v rustup >/dev/null || {
        echo "error: rustup is needed to add the Rust target $triple (install Rust with rustup)" >&2
        return 1
    }
    rustup target list --installed | grep -qx "$triple" || run rustup target add "$triple"
}

# ensure_docker_cli: the e2e tests run the docker CLI (client only; no daemon is used).
# Debian ships it in docker.io; a docker already on PATH (e.g. Docker's own packages) wins.
ensure_docker_cli() {
    command -v docker >/dev/null || apt_ensure docker.io
}

# build_ui: the app embeds ui/dist at compile time, so the UI is built before the app.
build_ui() {
    run npm ci --prefix ui --no-audit --no-fund
    run npm run --prefix ui build
}

# target_dir: cargo's target folder, absolute (CARGO_TARGET_DIR, else ./target).
target_dir() { realpath -m "${CARGO_TARGET_DIR:-target}"; }

# port_is_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port [TAKEN...]: a loopback port nothing listens on and not one of TAKEN (ports picked
# before for servers not started yet), for a server started a moment later. Picked at random
# (two scripts at once do not pick the same one) below the kernel's range of ephemeral
# ports, so that no outgoing connection made meanwhile can be given it.
free_port() {
    local port first last taken
    read -r first last </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || first=32768
    for _ in {1..100}; do
        port=$((20000 + RANDOM % (first > 21000 ? first - 20000 : 1000)))
        for taken in "$@"; do [[ "$port" == "$taken" ]] && continue 2; done
        port_is_free "$port" && { echo "$port"; return 0; }
    done
    echo "error: found no free loopback port" >&2
    return 1
}

# show_logs DIR: the end of every log in DIR, on stderr (before a failed check removes it).
show_logs() {
    local log
    for log in "$1"/*.log; do
        [[ -f "$log" ]] || continue
        echo "--- the last 30 lines of $(basename "$log"):" >&2
        tail -n 30 "$log" >&2
    done
}
