#!/usr/bin/env bash
# Fuzzes segsync's file readers (CSV, NDJSON, Parquet) and segment predicate validation with
# cargo fuzz (libFuzzer), each target for SECONDS (default 30), and prints what each run did.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: csv ndjson parquet predicate (default all)
#   scripts/fuzz.sh --runs N [TARGET...]       N inputs per target from a fixed seed: for a
#                                              given build, the same inputs every time (CI
#                                              runs this form: a red step is a real finding)
#
# - Installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`, about 30 s).
# - Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo fuzz pass the nightly-only
#   flags it needs (sanitizer coverage, AddressSanitizer).
# - Seeds each target's corpus (fuzz/corpus/TARGET, not committed) with the hostile-input
#   corpus (crates/segsync/tests/corpus) and fuzz/seeds/predicate.
# - Copies every input libFuzzer saved as a finding (crash-*, oom-*, timeout-*, leak-*) into
#   crates/segsync/tests/corpus/fuzz-regressions/TARGET/, where
#   `cargo test -p segsync --test hostile_input` replays it; exits 1 if there was any.
# - The first build of the targets takes a few minutes (its own target folder, fuzz/target).
set -euo pipefail

runs=""
if [ "${1:-}" = "--runs" ]; then
    runs=${2:-}
    shift 2 || true
    case "$runs" in
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh --runs N [csv|ndjson|parquet|predicate ...]" >&2
        exit 2
        ;;
    esac
    seconds=0
else
    seconds=${1:-30}
    shift || true
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(csv ndjson parquet predicate)
fi
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [csv|ndjson|parquet|predicate ...]" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/crates/segsync/tests/corpus"
regressions="$corpus/fuzz-regressions"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    start=$(date +%s)
    cargo install cargo-fuzz --locked
    echo "fuzz: cargo-fuzz installed in $(($(date +%s) - start)) s"
fi

cd "$root/fuzz"
start=$(date +%s)
cargo fuzz build -a
echo "fuzz: targets built in $(($(date +%s) - start)) s"

# seed TARGET DIR...: copies the files of each DIR (not recursing) into the target's corpus.
seed() {
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for dir in "$@"; do
        [ -d "$dir" ] || continue
        find "$dir" -maxdepth 1 -type f ! -name '*.md' -exec cp -n {} "corpus/$target/" \;
    done
}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
found=0
summary=()
for t in "${targets[@]}"; do
    case "$t" in
    csv) seed csv "$corpus/csv" "$corpus/runtime" "$corpus/export" "$regressions/csv" && cp -n "$corpus/good.csv" corpus/csv/ ;;
    ndjson) seed ndjson "$corpus/ndjson" "$regressions/ndjson" ;;
    parquet) seed parquet "$corpus/parquet" "$regressions/parquet" ;;
    predicate) seed predicate "$root/fuzz/seeds/predicate" "$regressions/predicate" ;;
    *)
        echo "fuzz: unknown target $t" >&2
        exit 2
        ;;
    esac
    mkdir -p "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    if [ -n "$runs" ]; then
        echo "fuzz: $t for $runs inputs from seed 1"
        budget=(-runs="$runs" -seed=1)
    else
        echo "fuzz: $t for $seconds s"
        budget=(-max_total_time="$seconds")
    fi
    status=0
    began=$(date +%s)
    cargo fuzz run -a "$t" "corpus/$t" -- \
        "${budget[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$logs/$t.log" 2>&1 || status=$?
    took=$(($(date +%s) - began))
    stat() { grep -m1 "^stat::$1:" "$logs/$t.log" | awk '{print $2}'; }
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    units=$(stat new_units_added)
    rss=$(stat peak_rss_mb)
    corpus_size=$(find "corpus/$t" -type f | wc -l)
    new=0
    mkdir -p "$regressions/$t"
    for f in artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-* artifacts/"$t"/leak-*; do
        [ -f "$f" ] || continue
        if [ ! -f "$regressions/$t/$(basename "$f")" ]; then
            cp "$f" "$regressions/$t/"
            new=$((new + 1))
        fi
    done
    after=$(find "artifacts/$t" -type f | wc -l)
    if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
        found=$((found + 1))
        echo "fuzz: $t FOUND something (exit $status):"
        grep -E -A3 "panicked at|^==[0-9]+==ERROR|^SUMMARY|out-of-memory|ALARM|Failing input" "$logs/$t.log" |
            grep -v "^\s*[0-9]*: \|^\s*at " | head -n 30 || true
    fi
    line="$t: ${execs:-?} execs in ${took} s (${rate:-?}/s), corpus $corpus_size (+${units:-?}), peak RSS ${rss:-?} MB, findings $((after - before)) (copied $new to tests/corpus/fuzz-regressions/$t)"
    summary+=("$line")
    echo "fuzz: $line"
done

echo
echo "fuzz summary"
printf '  %s\n' "${summary[@]}"
if [ "$found" -ne 0 ]; then
    echo "fuzz: $found target(s) found crashes: replay with cargo test -p segsync --test hostile_input fuzz_regressions_replay"
    exit 1
fi
