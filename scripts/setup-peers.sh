#!/usr/bin/env bash
# Creates (or reuses) the Python venv of independent test peers under target/.
# Idempotent: the venv is rebuilt only when the requirements file changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/peers-venv
req=scripts/peers-requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
echo "setup-peers: creating $venv" >&2
mkdir -p target
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
