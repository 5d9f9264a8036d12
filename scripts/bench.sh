#!/usr/bin/env bash
# Reruns the figures of docs/benchmarks.md and prints them in the form of its table:
# run | figure | millrace | peer or baseline in the same run | machine.
#
#   scripts/bench.sh                 every run of the table
#   scripts/bench.sh --only modbus   one run (repeat --only for more)
#   scripts/bench.sh --quick         short criterion and loadgen windows: checks that the
#                                    benches and this script work; not figures to publish
#
# Runs: the end-to-end rows (millrace-loadgen bench, with the table's arguments) and one
# `cargo bench --bench NAME` per [[bench]] of Cargo.toml. Each run's whole output is kept
# in target/bench-results/NAME.log (and NAME.json for the end-to-end rows). Needs python3
# to parse criterion's and loadgen's reports. Run it on quiet cores: anything else running
# on the machine moves the figures (docs/benchmarks.md, "Machine").
set -euo pipefail

cd "$(dirname "$0")/.."

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

E2E_RUNS=(e2e-latency e2e-pipelined e2e-pipelined-5m e2e-plant e2e-gateway)
CRITERION_RUNS=(reader ring modbus kdb kdb_tls wal)
# The S7 bench lands with the S7 reader; run it wherever it exists.
[[ -f benches/s7.rs ]] && CRITERION_RUNS+=(s7)

quick=0
only=()
while (($#)); do
    case "$1" in
        --quick) quick=1 ;;
        --only)
            [[ $# -ge 2 ]] || { echo "bench.sh: --only needs a run name" >&2; usage 2; }
            only+=("$2")
            shift
            ;;
        -h | --help) usage 0 ;;
        *) echo "bench.sh: unknown argument '$1'" >&2; usage 2 ;;
    esac
    shift
done

for name in "${only[@]}"; do
    case " ${E2E_RUNS[*]} ${CRITERION_RUNS[*]} " in
        *" $name "*) ;;
        *)
            echo "bench.sh: no run named '$name'; runs: ${E2E_RUNS[*]} ${CRITERION_RUNS[*]}" >&2
            exit 2
            ;;
    esac
done

selected() {
    ((${#only[@]} == 0)) && return 0
    local name
    for name in "${only[@]}"; do [[ $name == "$1" ]] && return 0; done
    return 1
}

# The table's windows; --quick shortens them (the ring's summary and the reader's steady
# window after criterion keep their fixed lengths).
if ((quick)); then
    criterion_args=(--measurement-time 1 --warm-up-time 1)
    ring_args=("${criterion_args[@]}")
    e2e_seconds=(--seconds 2 --baseline-seconds 2)
else
    criterion_args=(--measurement-time 3 --warm-up-time 1)
    ring_args=(--measurement-time 2 --warm-up-time 1)
    e2e_seconds=(--seconds 5 --baseline-seconds 5)
fi

e2e_args() {
    case "$1" in
        e2e-latency)
            echo --devices 1000 --tags-per-device 125 --poll-interval-ms 125 \
                --commit-interval 2ms --batch-age 1ms
            ;;
        e2e-pipelined)
            echo --devices 100 --tags-per-device 1250 --poll-interval-ms 10 --max-inflight 10
            ;;
        e2e-pipelined-5m)
            echo --devices 40 --tags-per-device 1250 --poll-interval-ms 10 --max-inflight 10
            ;;
        e2e-plant)
            echo --devices 1000 --tags-per-device 125 --poll-interval-ms 10
            ;;
        e2e-gateway)
            echo --devices 1000 --tags-per-device 100 --poll-interval-ms 1000 \
                --units-per-connection 10 --max-inflight 10
            ;;
    esac
}

out=target/bench-results
mkdir -p "$out"
rows="$out/rows.md"
: >"$rows"
failed=0

load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# Appends the table rows of one criterion run to $rows and prints the bench's own summary.
parse_criterion() { # NAME LOG LOAD_BEFORE LOAD_AFTER
    python3 - "$@" >>"$rows" <<'PY'
import re, sys
name, log, load_before, load_after = sys.argv[1:5]
# A criterion id names millrace's function or a peer's in one of its components; the
# other components make the figure both sides are compared on.
PEER = re.compile(r"^(rtrb|crossbeam|kdbplus|tokio|snap7|plain_write|bare|tls$|epoll$)")
MILLRACE = re.compile(r"^(millrace|plain$|io_uring$)")
ESTIMATE = re.compile(r"(?:^|\s)(time|thrpt):\s+\[(\S+ \S+) (\S+ \S+) (\S+ \S+)\]")
NOT_AN_ID = re.compile(r"^(Benchmarking|Found|Warning|WARNING|Gnuplot|Running|Compiling|"
                       r"Finished|reader|ring summary|commit_latency|paired_append)")
figures = {}  # key -> {"millrace": [...], "peer": [...]}, in order of first appearance
current, last_line_id = None, None
for line in open(log, encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    m = ESTIMATE.search(line)
    if m is None:
        if line and not line[0].isspace() and not NOT_AN_ID.match(line) and " " not in line:
            last_line_id = line
        continue
    if "%" in line:  # criterion's change against the previous run, not an estimate
        continue
    kind, median = m.group(1), m.group(3)
    if kind == "time":
        before = line[: m.start()].strip()
        current = {"id": before or last_line_id, "time": median, "thrpt": None}
        parts = current["id"].split("/")
        side, label, key = "millrace", current["id"], current["id"]
        for i, part in enumerate(parts):
            if PEER.match(part) or MILLRACE.match(part):
                side = "peer" if PEER.match(part) else "millrace"
                label, key = part, "/".join(parts[:i] + parts[i + 1:])
                break
        current["label"] = label
        figures.setdefault(key, {"millrace": [], "peer": []})[side].append(current)
    elif current is not None:
        current["thrpt"] = median

def cell(entries):
    return "; ".join(
        f"{e['label']} {e['time']}" + (f" ({e['thrpt']})" if e["thrpt"] else "")
        for e in entries) or "-"

machine = f"load {load_before} -> {load_after}"
for key, sides in figures.items():
    print(f"| `{name}` | {key} | {cell(sides['millrace'])} | {cell(sides['peer'])} | {machine} |")
if not figures:
    print(f"| `{name}` | no criterion estimate found in {log} | - | - | {machine} |")
PY
}

# The bench's own lines beside criterion's: per-CPU figures and summaries.
print_summaries() { # NAME LOG
    case "$1" in
        reader)
            grep -E '^reader/|^reader summary|^ +(driver|io_uring|epoll)|^io_uring / epoll|perf:' \
                "$2" || true
            ;;
        ring) sed -n '/^ring summary/,$p' "$2" ;;
        wal) grep -E '^(commit_latency|paired_append)/' "$2" || true ;;
    esac
}

# Appends the table row of one end-to-end run to $rows.
parse_e2e() { # NAME JSON LOAD_BEFORE LOAD_AFTER
    python3 - "$@" >>"$rows" <<'PY'
import json, sys
name, path, load_before, load_after = sys.argv[1:5]
r = json.load(open(path))
M = lambda x: "-" if x is None else f"{x / 1e6:.2f} M"
e2e = r["stages_ms"].get("end_to_end", {})
ms = lambda q: "-" if e2e.get(q) is None else f"{e2e[q]:.1f}"
figure = (f"{r['devices']} x {r['tags_per_device']} @ {r['poll_interval_ms']} ms, "
          f"{r['max_inflight']} in flight, commit {r['commit_interval']}, "
          f"batch age {r['batch_age']}")
if r.get("units_per_connection", 1) > 1:
    figure += f", {r['units_per_connection']} units a connection"
millrace = (f"{M(r['samples_per_s'])} samples/s delivered (polled {M(r['polled_samples_per_s'])}); "
            f"end to end p50 {ms('p50')} / p90 {ms('p90')} / p99 {ms('p99')} ms; "
            f"{M(r['samples_per_cpu_s'])} per CPU-s")
b = r.get("baseline")
if b:
    ratio = "-"
    if r["samples_per_cpu_s"] and b["samples_per_cpu_s"]:
        ratio = f"{r['samples_per_cpu_s'] / b['samples_per_cpu_s']:.2f}x"
    peer = (f"tokio-modbus: {M(b['samples_per_s'])} samples/s, {M(b['samples_per_cpu_s'])} "
            f"per CPU-s; {ratio} per CPU-s; lost {b['lost']}, mismatches {b['mismatches']}")
else:
    peer = r.get("baseline_absent", "-")
verdict = "PASS" if r["passed"] else "FAIL"
machine = (f"load {load_before} -> {load_after}; lost {r['lost']}, duplicates after dedup "
           f"{r['duplicates_after_dedup']}, mismatches {r['mismatches']}: {verdict}")
print(f"| `{name}` | {figure} | {millrace} | {peer} | {machine} |")
PY
}

run_e2e() { # NAME
    local name=$1 log="$out/$1.log" json="$out/$1.json" before status=0
    # shellcheck disable=SC2046 # e2e_args prints the row's arguments, one word each
    local args=(bench "${e2e_seconds[@]}" $(e2e_args "$name") --json "$json")
    echo "== $name: cargo run --release -p millrace-loadgen -- ${args[*]}" >&2
    rm -f "$json"
    before=$(load_average)
    cargo run --release -p millrace-loadgen -- "${args[@]}" >"$log" 2>&1 || status=$?
    if [[ -f $json ]]; then
        parse_e2e "$name" "$json" "$before" "$(load_average)"
    else
        echo "| \`$name\` | no report: exit $status, see $log | - | - | - |" >>"$rows"
    fi
    ((status == 0)) || failed=1
}

run_criterion() { # NAME
    local name=$1 log="$out/$1.log" before status=0 args=("${criterion_args[@]}") env=()
    [[ $name == ring ]] && args=("${ring_args[@]}")
    [[ $name == reader ]] && env=(MILLRACE_READER_PERF=1)
    echo "== $name: ${env[*]:+${env[*]} }cargo bench --bench $name -- ${args[*]}" >&2
    before=$(load_average)
    env "${env[@]}" cargo bench --bench "$name" -- "${args[@]}" >"$log" 2>&1 || status=$?
    parse_criterion "$name" "$log" "$before" "$(load_average)"
    print_summaries "$name" "$log" >"$out/$name.summary"
    if ((status != 0)); then
        echo "bench.sh: $name exited $status, see $log" >&2
        failed=1
    fi
}

e2e_selected=0
for name in "${E2E_RUNS[@]}"; do selected "$name" && e2e_selected=1; done
if ((e2e_selected)); then
    # The end-to-end bench starts the millrace binary beside millrace-loadgen.
    echo "== cargo build --release --workspace" >&2
    cargo build --release --workspace >"$out/build.log" 2>&1 ||
        { echo "bench.sh: build failed, see $out/build.log" >&2; exit 1; }
fi
for name in "${E2E_RUNS[@]}"; do selected "$name" && run_e2e "$name"; done
for name in "${CRITERION_RUNS[@]}"; do selected "$name" && run_criterion "$name"; done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
echo
note=""
((quick)) && note="; --quick: not figures"
echo "Machine: $(nproc) CPUs, $cpu, $mem, kernel $(uname -r)$note"
echo
echo "| run (\`--only\`) | figure | millrace | peer or baseline, same run | machine |"
echo "|---|---|---|---|---|"
cat "$rows"
for name in "${CRITERION_RUNS[@]}"; do
    if selected "$name" && [[ -s $out/$name.summary ]]; then
        echo
        echo "$name, the bench's own summary:"
        cat "$out/$name.summary"
    fi
done
echo
echo "Whole outputs: $out/"
exit "$failed"
