#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks it: its contents, its
# conffiles and maintainer scripts, an install with dpkg into a scratch root
# (the host's /usr and package database are never touched), and
# `millrace check-config` run from the installed tree against the installed
# configuration.
#
# MILLRACE_DEB_PROFILE (default `dev`) picks the Cargo profile the binaries
# come from. scripts/test.sh packages the dev build it has just made, so the
# check costs seconds; a package to ship: MILLRACE_DEB_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${MILLRACE_DEB_PROFILE:-dev}"

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package-deb: cargo-deb missing, installing it"
    cargo install cargo-deb --locked
fi

fail() {
    echo "package-deb: FAILED: $*" >&2
    exit 1
}

out="target/debian"
rm -rf "$out"
if [ "$profile" = release ]; then
    cargo build --release --workspace --bins
    deb="$(cargo deb -p millrace --no-build --output "$out/")"
else
    # Both binaries from one build, staged where cargo-deb looks for release
    # binaries: cargo-deb refuses to package a dev profile itself, and
    # target/release is left alone. The dev binaries are the ones the test
    # build made (`cargo test --no-run` is a no-op after scripts/test.sh):
    # `cargo build` would rebuild every dependency without the
    # dev-dependencies' features.
    if [ "$profile" = dev ]; then
        cargo test --workspace --no-run
    else
        cargo build --workspace --bins --profile "$profile"
    fi
    built="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"
    stage="target/deb-stage"
    rm -rf "$stage"
    mkdir -p "$stage/release"
    cp "$built/millrace" "$built/millrace-loadgen" "$stage/release/"
    deb="$(CARGO_TARGET_DIR="$stage" cargo deb -p millrace --no-build --output "$out/")"
fi
[ -f "$deb" ] || fail "cargo deb made no package ($deb)"
echo "package-deb: built $deb ($(du -h "$deb" | cut -f1))"

contents="$(dpkg-deb -c "$deb")"
for path in ./usr/bin/millrace ./usr/bin/millrace-loadgen \
    ./etc/millrace/millrace.toml ./etc/millrace/tags.csv \
    ./usr/lib/systemd/system/millrace.service \
    ./usr/share/doc/millrace/README.md ./usr/share/doc/millrace/operations.md \
    ./usr/share/millrace/grafana/millrace.json; do
    grep -qE " ${path}\$" <<<"$contents" || fail "$path is not in the package"
done
grep -qE '^-rwxr-xr-x 0/0 .* ./usr/bin/millrace$' <<<"$contents" ||
    fail "/usr/bin/millrace is not a root-owned executable"

control="$(mktemp -d)"
scratch="$(mktemp -d)"
trap 'rm -rf "$control" "$scratch"' EXIT
dpkg-deb -e "$deb" "$control"
for f in /etc/millrace/millrace.toml /etc/millrace/tags.csv; do
    grep -qx "$f" "$control/conffiles" || fail "$f is not a conffile"
done
grep -q 'adduser --system' "$control/postinst" || fail "postinst creates no system user"
grep -q 'install -d -o millrace -g millrace -m 0700 /var/lib/millrace' "$control/postinst" ||
    fail "postinst does not give /var/lib/millrace to the millrace user"
for script in "$control"/postinst "$control"/prerm "$control"/postrm; do
    [ -f "$script" ] && { sh -n "$script" || fail "$(basename "$script") is not valid sh"; }
done
grep -q '^Depends:.*adduser' "$control/control" || fail "no dependency on adduser"

# Install into a scratch root: its own dpkg database, unpacked only (the
# maintainer scripts would run chrooted into a root without a shell, and
# postinst must not add a user to this host).
mkdir -p "$scratch/var/lib/dpkg/info" "$scratch/var/lib/dpkg/updates"
touch "$scratch/var/lib/dpkg/status"
dpkg --root="$scratch" --force-not-root --force-depends --unpack "$deb" >/dev/null
dpkg --root="$scratch" -s millrace | grep -q '^Status: install ok unpacked' ||
    fail "dpkg does not list millrace as unpacked in the scratch root"
dpkg --root="$scratch" -L millrace | grep -qx /usr/bin/millrace ||
    fail "dpkg does not own /usr/bin/millrace in the scratch root"

# Unpacked conffiles wait as .dpkg-new until `dpkg --configure`, which would
# run postinst (adduser) on this host: do its renaming here instead.
for f in millrace.toml tags.csv; do
    [ -f "$scratch/etc/millrace/$f.dpkg-new" ] || fail "dpkg did not unpack /etc/millrace/$f as a conffile"
    mv "$scratch/etc/millrace/$f.dpkg-new" "$scratch/etc/millrace/$f"
done

unit="$scratch/usr/lib/systemd/system/millrace.service"
grep -qx 'ExecStart=/usr/bin/millrace run --config /etc/millrace/millrace.toml' "$unit" ||
    fail "the unit does not run /usr/bin/millrace on /etc/millrace/millrace.toml"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || fail "the unit cannot reload (SIGHUP)"
grep -qx 'User=millrace' "$unit" || fail "the unit does not run as millrace"
grep -qx 'NoNewPrivileges=true' "$unit" || fail "the unit lost its hardening"

# The installed binary accepts the installed configuration (its tag CSV is
# found beside it, relative to the file).
check="$("$scratch/usr/bin/millrace" check-config "$scratch/etc/millrace/millrace.toml")" ||
    fail "check-config rejected the installed configuration"
grep -q '(valid)' <<<"$check" || fail "check-config did not say valid: $check"
grep -q 'tags: 6' <<<"$check" || fail "the installed tag CSV was not read: $check"
"$scratch/usr/bin/millrace-loadgen" --help >/dev/null || fail "millrace-loadgen does not run"
echo "package-deb: ok ($deb: contents, conffiles, scripts, scratch install, check-config)"
