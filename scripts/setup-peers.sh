#!/usr/bin/env bash
# Creates (or reuses) the Python venvs of independent test peers under target/.
# Idempotent: a venv is rebuilt only when its requirements change.
#
# - target/peers-venv: Modbus and kdb+ peers (scripts/peers-requirements.txt).
# - target/snap7-2.1.0-venv, target/snap7-3.3.0-venv: the two S7comm servers.
#   Both install as the module `snap7` (2.1.0 bundles the C++ Snap7 server in
#   its wheel, 3.3.0 is a pure-Python rewrite), so each needs its own venv.
# - target/cm-ethernetip-venv, target/cpppo-venv: the two EtherNet/IP CIP
#   servers (Logix tag databases), each in its own venv so that neither's
#   dependencies can change the other's behaviour.
# - target/asyncua-2.1.0-venv: the OPC UA server (FreeOpcUa's pure-Python
#   asyncua), in its own venv for its cryptography dependency.
set -euo pipefail
cd "$(dirname "$0")/.."

# make_venv DIR REQUIREMENTS...: the venv at DIR with exactly these pins.
make_venv() {
    local venv="$1"
    shift
    local stamp="$venv/.requirements.sha256"
    local want
    want=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "setup-peers: creating $venv" >&2
    mkdir -p target
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    echo "$want" > "$stamp"
}

req=scripts/peers-requirements.txt
mapfile -t pins < <(grep -v '^\s*#' "$req" | grep -v '^\s*$')
make_venv target/peers-venv "${pins[@]}"
make_venv target/snap7-2.1.0-venv "python-snap7==2.1.0"
make_venv target/snap7-3.3.0-venv "python-snap7==3.3.0"
make_venv target/cm-ethernetip-venv "cm-ethernetip==0.1.0"
make_venv target/cpppo-venv "cpppo==5.2.5"
make_venv target/asyncua-2.1.0-venv "asyncua==2.1.0"
