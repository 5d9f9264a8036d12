#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh machine,
# then runs every test of the workspace. Peers that cannot be installed fail
# the run here, loudly; no test skips for want of a peer.
set -euo pipefail
cd "$(dirname "$0")/.."
# The kdbplus peer (a dev-dependency) links OpenSSL through native-tls; the
# machine image has these, a bare one gets them from Debian.
if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config
fi
# tests/kdb_tls_certs.rs makes certificates with the openssl command line, as
# people do (a bare image has libssl but not always the CLI).
if ! command -v openssl >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq openssl
fi
# The clock fault test steps the wall clock of millrace alone with libfaketime.
if ! dpkg -s libfaketime >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq faketime
fi
scripts/setup-peers.sh
export MILLRACE_PEER_PYTHON="$PWD/target/peers-venv/bin/python"
# One build of the workspace, bins included (the integration tests run them),
# with the dev-dependencies' features: a separate `cargo build --bins` first
# would build every shared dependency twice, once per feature set.
cargo test --workspace --no-fail-fast "$@"
# The Debian package, from the dev build above: contents, conffiles,
# maintainer scripts, an install into a scratch root, check-config there.
scripts/package-deb.sh
# MILLRACE_FREE_DISK=1 (CI sets it): each of the three builds (dev, loom,
# fuzz) is deleted once its step is done, so the disk holds one at a time.
free_disk() {
    if [ "${MILLRACE_FREE_DISK:-0}" = 1 ]; then
        echo "test.sh: freeing $* ($(du -sh "$@" 2>/dev/null | cut -f1 | paste -sd+))"
        rm -rf "$@"
    fi
}
free_disk target/debug target/deb-stage
# The ring's memory orderings under loom's model checker: a separate build
# (its own target dir, the atomics swapped for loom's) of one test file.
RUSTFLAGS="--cfg millrace_loom" CARGO_TARGET_DIR=target/loom \
    cargo test --profile loom --test ring_loom
free_disk target/loom
# Bounded fuzzing of every decoder (MILLRACE_FUZZ_SECONDS per target, default 20).
scripts/fuzz-ci.sh
