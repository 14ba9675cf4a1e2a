#!/usr/bin/env bash
# `make install` and `make uninstall`: berthd, berth and berth-runner, the config, the systemd
# units, the sysusers.d and tmpfiles.d entries, the man pages berth(1) and berthd(8), bash, zsh
# and fish completions, and the manual. See "Install as a service" in docs/operating.md.
#
# Variables (all optional):
#   PREFIX      /usr/local   binaries in PREFIX/bin, units in PREFIX/lib/systemd/system,
#                            sysusers.d and tmpfiles.d entries in PREFIX/lib/{sysusers,tmpfiles}.d,
#                            README, docs/ and the shipped config in PREFIX/share/doc/berth,
#                            man pages in PREFIX/share/man, completions in PREFIX/share/{bash-completion,zsh,fish}
#   DESTDIR     (none)       staging root prepended to every path; with it nothing is run
#                            against the live system (no user created, no daemon-reload)
#   UNITDIR, SYSUSERSDIR, TMPFILESDIR   override those three folders (e.g. /etc/systemd/system
#                            when PREFIX is not one systemd searches: /usr/local and /usr are)
#   BIN_DIR     (none)       install the binaries already in this folder instead of building
#   SKIP_BUILD  (none)       1: use the last release build as it is (.build/release)
#   SWIFT       swift
# The config always goes to /etc/berth/berthd.toml (that is where the unit looks), and an
# existing one is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-install}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SWIFT=${SWIFT:-swift}
bindir=$PREFIX/bin
unitdir=${UNITDIR:-$PREFIX/lib/systemd/system}
sysusersdir=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
tmpfilesdir=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
docdir=$PREFIX/share/doc/berth
mandir=$PREFIX/share/man
bashcompdir=$PREFIX/share/bash-completion/completions
zshcompdir=$PREFIX/share/zsh/site-functions
fishcompdir=$PREFIX/share/fish/vendor_completions.d
confdir=/etc/berth
binaries=(berthd berth berth-runner)
live=false
[ -z "$DESTDIR" ] && live=true
systemd_running=false
[ -d /run/systemd/system ] && systemd_running=true

if $live && [ "$(id -u)" -ne 0 ]; then
    echo "installing into the system needs root: run 'sudo make $action', or set DESTDIR to stage the files" >&2
    exit 1
fi

install_units() {
    # The units name /usr/local paths; point them at this PREFIX.
    local sed_args=(-e "s|/usr/local/bin/berthd|$bindir/berthd|g" -e "s|/usr/local/share/doc/berth|$docdir|g")
    [ "$bindir" != /usr/local/bin ] && sed_args+=(-e "s|^Environment=PATH=|Environment=PATH=$bindir:|")
    mkdir -p "$DESTDIR$unitdir"
    for unit in berthd.service berthd.socket; do
        sed "${sed_args[@]}" "systemd/$unit" >"$DESTDIR$unitdir/$unit"
        chmod 0644 "$DESTDIR$unitdir/$unit"
    done
}

# Man pages and completions, made by the binaries being installed, so they always match them.
install_generated() {
    local scratch
    scratch=$(mktemp -d)
    if ! command -v python3 >/dev/null; then
        echo "python3 not found: man pages not installed (they are made by scripts/gen-docs.py)" >&2
    elif python3 scripts/gen-docs.py man --bin "$1" --out "$scratch"; then
        install -D -m 0644 "$scratch/berth.1" "$DESTDIR$mandir/man1/berth.1"
        install -D -m 0644 "$scratch/berthd.8" "$DESTDIR$mandir/man8/berthd.8"
    else
        echo "could not make the man pages" >&2
    fi
    for tool in berth berthd; do
        "$1/$tool" --generate-completion-script bash >"$scratch/$tool.bash"
        "$1/$tool" --generate-completion-script zsh >"$scratch/_$tool"
        "$1/$tool" --generate-completion-script fish >"$scratch/$tool.fish"
        install -D -m 0644 "$scratch/$tool.bash" "$DESTDIR$bashcompdir/$tool"
        install -D -m 0644 "$scratch/_$tool" "$DESTDIR$zshcompdir/_$tool"
        install -D -m 0644 "$scratch/$tool.fish" "$DESTDIR$fishcompdir/$tool.fish"
    done
    rm -rf "$scratch"
    echo "installed the man pages in $DESTDIR$mandir and completions for bash, zsh and fish"
}

do_install() {
    local built
    if [ -n "${BIN_DIR:-}" ]; then
        built=$BIN_DIR
    else
        # The standard library linked in, and `berth` a fully static executable: a CLI
        # command starts in a few milliseconds instead of loading shared libraries first
        # (scripts/release-build.sh says how).
        [ "${SKIP_BUILD:-}" = 1 ] || SWIFT="$SWIFT" ./scripts/release-build.sh
        built=$(SWIFT="$SWIFT" ./scripts/release-build.sh --show-bin-path)
    fi
    for name in berthd berth; do
        [ -x "$built/$name" ] || { echo "no $name in $built: build it first (scripts/release-build.sh)" >&2; exit 1; }
    done

    for name in "${binaries[@]}"; do
        if [ -x "$built/$name" ]; then
            install -D -m 0755 "$built/$name" "$DESTDIR$bindir/$name"
            echo "installed $DESTDIR$bindir/$name"
        fi
    done
    install_units
    install -D -m 0644 systemd/berth.sysusers "$DESTDIR$sysusersdir/berth.conf"
    install -D -m 0644 systemd/berth.tmpfiles "$DESTDIR$tmpfilesdir/berth.conf"
    install -D -m 0644 README.md "$DESTDIR$docdir/README.md"
    for page in docs/*.md docs/openapi.yaml; do install -D -m 0644 "$page" "$DESTDIR$docdir/$page"; done
    install -D -m 0644 docs/grafana/berth.json "$DESTDIR$docdir/docs/grafana/berth.json"
    install_generated "$built"
    install -D -m 0644 config/berthd.toml "$DESTDIR$docdir/berthd.toml.example"
    echo "installed the units in $DESTDIR$unitdir, sysusers.d and tmpfiles.d entries, and $DESTDIR$docdir"
    if [ -e "$DESTDIR$confdir/berthd.toml" ]; then
        echo "kept the existing $DESTDIR$confdir/berthd.toml; the shipped one is $DESTDIR$docdir/berthd.toml.example"
    else
        install -D -m 0644 config/berthd.toml "$DESTDIR$confdir/berthd.toml"
        echo "installed $DESTDIR$confdir/berthd.toml"
    fi

    if $live; then
        # The user and folders must exist before the socket unit can give its file to group berth.
        if command -v systemd-sysusers >/dev/null; then systemd-sysusers "$sysusersdir/berth.conf"; fi
        if command -v systemd-tmpfiles >/dev/null; then systemd-tmpfiles --create "$tmpfilesdir/berth.conf"; fi
        if $systemd_running; then systemctl daemon-reload; fi
        cat <<MSG

Next: start the service, then use berth as any member of group berth:
    systemctl enable --now berthd.socket berthd.service
    usermod -aG berth YOUR-USER        # then log in again
    berth status
MSG
    fi
}

do_uninstall() {
    if $live && $systemd_running; then
        systemctl disable --now berthd.service berthd.socket 2>/dev/null || true
    fi
    for name in "${binaries[@]}"; do rm -f "$DESTDIR$bindir/$name"; done
    rm -f "$DESTDIR$mandir/man1/berth.1" "$DESTDIR$mandir/man8/berthd.8"
    for tool in berth berthd; do
        rm -f "$DESTDIR$bashcompdir/$tool" "$DESTDIR$zshcompdir/_$tool" "$DESTDIR$fishcompdir/$tool.fish"
    done
    rm -f "$DESTDIR$unitdir/berthd.service" "$DESTDIR$unitdir/berthd.socket" \
        "$DESTDIR$sysusersdir/berth.conf" "$DESTDIR$tmpfilesdir/berth.conf"
    rm -rf "$DESTDIR$docdir"
    if $live && $systemd_running; then systemctl daemon-reload; fi
    echo "removed berth's binaries, units, sysusers.d and tmpfiles.d entries, man pages, completions and $DESTDIR$docdir"
    echo "kept $DESTDIR$confdir (config), /var/lib/berth (ledger), /var/log/berth (job logs) and the berth user; remove them by hand if you want them gone"
}

case $action in
install) do_install ;;
uninstall) do_uninstall ;;
*) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
