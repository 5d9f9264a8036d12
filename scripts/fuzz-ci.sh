#!/usr/bin/env bash
# Bounded fuzzing for CI: builds every cargo-fuzz target in fuzz/ once, then
# runs each for MILLRACE_FUZZ_SECONDS (default 20) over a copy of its corpus
# (fuzz/corpus/TARGET stays as committed). Any crash, timeout or out-of-memory
# fails the run; the input that caused it is kept and its path printed, with
# the command that replays it.
#
# Needs only the Rust toolchain: cargo-fuzz is installed when missing, and
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz's -Z flags through on stable.
#
# Built without a sanitizer (-s none): the decoders are #![forbid(unsafe_code)]
# and every target checks its own invariants, so AddressSanitizer would mostly
# add build time and a 2-3x slower run; debug assertions and overflow checks
# stay on (cargo-fuzz's default). A nightly-style ASan run is still
# `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET`.
#
# Environment: MILLRACE_FUZZ_SECONDS (per target), MILLRACE_FUZZ_JOBS (targets
# run side by side, default 2), MILLRACE_FUZZ_TARGET_DIR (cargo target dir,
# default fuzz/target), MILLRACE_FUZZ_OUT (logs and crashes, default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${MILLRACE_FUZZ_SECONDS:-20}"
jobs="${MILLRACE_FUZZ_JOBS:-2}"
target_dir="${MILLRACE_FUZZ_TARGET_DIR:-$PWD/target}"
out="${MILLRACE_FUZZ_OUT:-$(mktemp -d -t millrace-fuzz.XXXXXX)}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-ci: cargo-fuzz missing, installing it"
    cargo install cargo-fuzz --locked
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
build_flags=(--sanitizer none --target "$triple" --target-dir "$target_dir")
start=$(date +%s)
cargo fuzz build "${build_flags[@]}"
built=$(date +%s)
echo "fuzz-ci: built every target in $((built - start)) s"

mapfile -t targets < <(cargo fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-ci: no fuzz targets found" >&2
    exit 1
fi

# One target: copy its corpus, run the binary directly (no cargo in the loop),
# leave RESULT in $out/TARGET.result: ok, or the crashing input's path.
fuzz_one() {
    local target="$1"
    local bin="$target_dir/$triple/release/$target"
    local corpus="$out/corpus/$target" artifacts="$out/artifacts/$target/"
    local log="$out/$target.log"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "corpus/$target" ]; then
        cp -r "corpus/$target/." "$corpus/"
    fi
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a decoder
    # that lets the input size its allocations shows up as an OOM.
    if "$bin" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
        echo ok >"$out/$target.result"
    else
        local found
        found="$(find "$artifacts" -type f | head -n 1)"
        echo "${found:-no artifact written (see $log)}" >"$out/$target.result"
    fi
}

pids=()
for target in "${targets[@]}"; do
    fuzz_one "$target" &
    pids+=("$!")
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid"
done

failed=0
for target in "${targets[@]}"; do
    result="$(cat "$out/$target.result" 2>/dev/null || echo "no result")"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$target.log" | tail -n 1)"
    if [ "$result" = ok ]; then
        echo "fuzz-ci: $target ok (${runs:-?} runs in ${seconds} s)"
    else
        failed=1
        echo "fuzz-ci: $target FAILED, crashing input: $result" >&2
        tail -n 40 "$out/$target.log" >&2
        echo "fuzz-ci: replay with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run" \
            "-s none $target $result" >&2
    fi
done
echo "fuzz-ci: ${#targets[@]} targets, $(( $(date +%s) - start )) s in all; logs in $out"
exit "$failed"
