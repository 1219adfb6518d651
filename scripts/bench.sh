#!/usr/bin/env bash
# CaseGraph benchmark: one command, reproducible, loopback only.
#
#   scripts/bench.sh
#
# 1. builds release (`cargo build --release --examples --bins`);
# 2. times `casegraph import fatalities data/un/DPPADPOSS-FATALITIES.csv` into fresh SQLite stores
#    (missions imported first, untimed), BENCH_IMPORT_RUNS times; reports the median;
# 3. grows a second store to BENCH_FACTOR× the real cases (examples/grow_store.rs, source
#    SYNTHETIC-x<factor>, on top of the real cases);
# 4. starts two release gateways on 127.0.0.1 (real data, grown data), mints a dev token, and
#    runs examples/loadgen.rs at BENCH_CONCURRENCY connections on four targets, interleaved in
#    BENCH_ROUNDS rounds of (BENCH_WARMUP s warm-up + BENCH_DURATION s measured) each:
#      typename      `{ __typename }`                                        real store
#      cases100      `cases(first: 100) { nodes { … victims … mission … } }` real store
#      filtered      `cases(first: 20, filter: {hostStates, victimNationalities, from})` real store
#      filtered_x100 the same query                                          grown store
# 5. prints a summary and appends it (date, git commit, nproc) to bench/RESULTS.md.
#
# Every server it starts is killed on exit. Timings are medians and side-by-side ratios of one
# run on a shared machine: compare ratios across runs, not absolute figures.
#
# Knobs (environment): BENCH_CONCURRENCY=32 BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_ROUNDS=3
# BENCH_IMPORT_RUNS=5 BENCH_FACTOR=100 BENCH_MAX_REQUESTS=2000000 BENCH_RESULTS=bench/RESULTS.md
# BENCH_KEEP=1 (keep the temporary stores and logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CONCURRENCY=${BENCH_CONCURRENCY:-32}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
IMPORT_RUNS=${BENCH_IMPORT_RUNS:-5}
FACTOR=${BENCH_FACTOR:-100}
MAX_REQUESTS=${BENCH_MAX_REQUESTS:-2000000}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}

# The benchmark names its stores and log level explicitly.
unset CASEGRAPH_STORE_URL RUST_LOG

for tool in cargo jq curl awk sed; do
    command -v "$tool" >/dev/null || { echo "bench.sh: $tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/casegraph-bench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        echo "bench.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '\n== %s\n' "$*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
# Median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------- build
log "Building release (cargo build --release --examples --bins)"
cargo build --release --examples --bins
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN="$TARGET_DIR/release/casegraph"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
GROW="$TARGET_DIR/release/examples/grow_store"
for b in "$BIN" "$LOADGEN" "$GROW"; do [[ -x "$b" ]] || die "missing $b after the build"; done

# A copy of config/casegraph.toml with its store in $1, the shared dev key in $WORK and no
# import of the bundled data on start.
make_config() {
    local dir=$1
    mkdir -p "$dir"
    sed -e "s|^url = \"sqlite://data/casegraph.db\"|url = \"sqlite://$dir/casegraph.db\"|" \
        -e "s|^key_file = \"data/dev-issuer-key.pem\"|key_file = \"$WORK/dev-issuer-key.pem\"|" \
        -e "s|^import_bundled_data_when_empty = true|import_bundled_data_when_empty = false|" \
        config/casegraph.toml >"$dir/casegraph.toml"
    # The case store alone: no host-state connectors, no demo simulators (their fixed ports would
    # clash between the two gateways).
    awk '
        /^\[/ { cur = $0; sub(/^\[/, "", cur); sub(/\].*$/, "", cur) }
        cur == "connectors" && /^dir[ \t]*=/ { print "dir = \"\""; next }
        cur == "simulators" && /^enabled[ \t]*=/ { print "enabled = false"; next }
        { print }
    ' "$dir/casegraph.toml" >"$dir/casegraph.toml.tmp" && mv "$dir/casegraph.toml.tmp" "$dir/casegraph.toml"
    grep -q "^url = \"sqlite://$dir/casegraph.db\"" "$dir/casegraph.toml" &&
        grep -q "^key_file = \"$WORK/dev-issuer-key.pem\"" "$dir/casegraph.toml" &&
        grep -q '^import_bundled_data_when_empty = false' "$dir/casegraph.toml" ||
        die "config/casegraph.toml changed shape: cannot point the copy in $dir at a temporary store"
    "$BIN" check-config --config "$dir/casegraph.toml" >/dev/null
}

import_missions() {
    "$BIN" import missions --config "$1/casegraph.toml" data/un/DPPADPOSS-PKO.csv >"$1/missions.out" 2>"$1/missions.err" ||
        { cat "$1/missions.err" >&2; die "importing the missions into $1 failed"; }
}

# ------------------------------------------------------------------------------- import timing
log "Import: DPPADPOSS-FATALITIES into $IMPORT_RUNS fresh SQLite stores"
: >"$WORK/import_wall" && : >"$WORK/import_self"
for i in $(seq 1 "$IMPORT_RUNS"); do
    d="$WORK/import-$i"
    make_config "$d"
    import_missions "$d"
    t0=$(now)
    "$BIN" import fatalities --config "$d/casegraph.toml" data/un/DPPADPOSS-FATALITIES.csv >"$d/fatalities.out" 2>"$d/fatalities.err" ||
        { cat "$d/fatalities.err" >&2; die "importing the fatalities (run $i) failed"; }
    t1=$(now)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    self=$(sed -n 's/.*; \([0-9.]*\)s$/\1/p' "$d/fatalities.out")
    echo "$wall" >>"$WORK/import_wall"
    echo "$self" >>"$WORK/import_self"
    echo "  run $i: ${wall}s wall (CLI reports ${self}s): $(cat "$d/fatalities.out")" >&2
done
IMPORT_LINE=$(cat "$WORK/import-1/fatalities.out")
IMPORT_MEDIAN=$(median <"$WORK/import_wall")
IMPORT_SELF_MEDIAN=$(median <"$WORK/import_self")
IMPORT_RUNS_LIST=$(paste -sd' ' "$WORK/import_wall")
REAL="$WORK/import-$IMPORT_RUNS" # the last fresh store serves the real data

# ------------------------------------------------------------------------------- grown store
log "Growing a second store to ${FACTOR}x the real cases (examples/grow_store)"
BIG="$WORK/x$FACTOR"
make_config "$BIG"
import_missions "$BIG"
"$BIN" import fatalities --config "$BIG/casegraph.toml" data/un/DPPADPOSS-FATALITIES.csv >/dev/null 2>"$BIG/fatalities.err" ||
    { cat "$BIG/fatalities.err" >&2; die "importing the fatalities into the grown store failed"; }
t0=$(now)
"$GROW" "sqlite://$BIG/casegraph.db" "$FACTOR" | tee "$BIG/grow.out"
GROW_SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
GROW_LINE=$(tail -n 1 "$BIG/grow.out")

# ------------------------------------------------------------------------------------ gateways
# A token for both gateways (they share the dev key); minting it first creates the key, so the
# two servers do not race to create it.
TOKEN=$("$BIN" dev-token --config "$REAL/casegraph.toml" --org UN --role un-analyst --sub bench)

# start_gateway DIR VAR: starts `casegraph serve` on 127.0.0.1 (free port) and sets VAR to its
# address once it listens.
start_gateway() {
    local dir=$1 var=$2 pid addr=""
    "$BIN" serve --config "$dir/casegraph.toml" --listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 600); do
        addr=$(sed -n 's|.*listening on http://\(127\.0\.0\.1:[0-9]*\).*|\1|p' "$dir/serve.log" | head -n 1)
        [[ -n "$addr" ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.log" >&2; die "the gateway on $dir exited"; }
        sleep 0.1
    done
    [[ -n "$addr" ]] || die "the gateway on $dir did not start listening within 60 s"
    curl -fsS "http://$addr/health/ready" >/dev/null || die "the gateway at $addr is not ready"
    printf -v "$var" '%s' "$addr"
}

log "Starting the release gateways (127.0.0.1)"
start_gateway "$REAL" REAL_ADDR
start_gateway "$BIG" BIG_ADDR
echo "  real data:  http://$REAL_ADDR  ($(sed -n 's/.*(\([0-9]* cases\).*/\1/p' "$REAL/serve.log"))" >&2
echo "  ${FACTOR}x data: http://$BIG_ADDR  ($(sed -n 's/.*(\([0-9]* cases\).*/\1/p' "$BIG/serve.log"))" >&2

Q="$WORK/queries"
mkdir -p "$Q"
echo '{ __typename }' >"$Q/typename.graphql"
echo '{ cases(first: 100) { nodes { id reference incidentDate victims { category nationality harm } mission { code name status } } } }' >"$Q/cases100.graphql"
echo '{ cases(first: 20, filter: {hostStates: ["MLI"], victimNationalities: ["TCD"], from: "2015-01-01"}) { totalCount nodes { reference victims { nationality } } } }' >"$Q/filtered.graphql"

log "Checking each query answers without errors"
"$LOADGEN" check --token "$TOKEN" "http://$REAL_ADDR/graphql" "$Q/typename.graphql" >"$WORK/check_typename.json"
"$LOADGEN" check --token "$TOKEN" "http://$REAL_ADDR/graphql" "$Q/cases100.graphql" >"$WORK/check_cases100.json"
"$LOADGEN" check --token "$TOKEN" "http://$REAL_ADDR/graphql" "$Q/filtered.graphql" >"$WORK/check_filtered.json"
"$LOADGEN" check --token "$TOKEN" "http://$BIG_ADDR/graphql" "$Q/filtered.graphql" >"$WORK/check_filtered_x100.json"
CASES100_NODES=$(jq '.data.cases.nodes | length' "$WORK/check_cases100.json")
CASES100_VICTIMS=$(jq '[.data.cases.nodes[].victims | length] | add' "$WORK/check_cases100.json")
FILTERED_TOTAL=$(jq '.data.cases.totalCount' "$WORK/check_filtered.json")
FILTERED_NODES=$(jq '.data.cases.nodes | length' "$WORK/check_filtered.json")
FILTERED_X_TOTAL=$(jq '.data.cases.totalCount' "$WORK/check_filtered_x100.json")
FILTERED_X_NODES=$(jq '.data.cases.nodes | length' "$WORK/check_filtered_x100.json")
echo "  cases100: $CASES100_NODES cases, $CASES100_VICTIMS victims; filtered: totalCount $FILTERED_TOTAL ($FILTERED_NODES returned) real, $FILTERED_X_TOTAL ($FILTERED_X_NODES returned) ${FACTOR}x" >&2
[[ "$CASES100_NODES" == 100 && "$FILTERED_NODES" -gt 0 && "$FILTERED_X_NODES" -gt 0 ]] ||
    die "the queries return too little data to be a meaningful benchmark"

# ---------------------------------------------------------------------------------------- load
log "Load: $CONCURRENCY connections, $ROUNDS interleaved round(s) of ${WARMUP}s warm-up + ${DURATION}s per target"
LOADGEN_RC=0
"$LOADGEN" --token "$TOKEN" --concurrency "$CONCURRENCY" --warmup "$WARMUP" --duration "$DURATION" \
    --rounds "$ROUNDS" --max-requests "$MAX_REQUESTS" \
    --target typename "http://$REAL_ADDR/graphql" "$Q/typename.graphql" \
    --target cases100 "http://$REAL_ADDR/graphql" "$Q/cases100.graphql" \
    --target filtered "http://$REAL_ADDR/graphql" "$Q/filtered.graphql" \
    --target filtered_x$FACTOR "http://$BIG_ADDR/graphql" "$Q/filtered.graphql" \
    >"$WORK/loadgen.jsonl" || LOADGEN_RC=$?
[[ -s "$WORK/loadgen.jsonl" ]] || die "the load generator produced nothing (exit $LOADGEN_RC)"

J="$WORK/loadgen.jsonl"
tgt() { jq -r --arg t "$1" "select(.kind == \"target\" and .target == \$t) | $2" "$J"; }
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }'; }
# Median over rounds of rps(A)/rps(B), paired round by round.
round_ratio() {
    jq -rs --arg a "$1" --arg b "$2" \
        'map(select(.kind == "round")) | group_by(.round) | map((map(select(.target == $a))[0].rps) / (map(select(.target == $b))[0].rps)) | .[]' "$J" | median
}
TOTAL_ERRORS=$(jq -s 'map(select(.kind == "target") | .errors) | add' "$J")
VALID=$([[ "$TOTAL_ERRORS" == 0 && "$LOADGEN_RC" == 0 ]] && echo "valid (0 errors)" || echo "INVALID: $TOTAL_ERRORS errors, loadgen exit $LOADGEN_RC")
RATIO_B_A=$(round_ratio cases100 typename)
RATIO_X_REAL=$(round_ratio "filtered_x$FACTOR" filtered)
P50_X_REAL=$(awk -v a="$(tgt "filtered_x$FACTOR" .p50_ms)" -v b="$(tgt filtered .p50_ms)" 'BEGIN { printf "%.2f", a / b }')
P99_X_REAL=$(awk -v a="$(tgt "filtered_x$FACTOR" .p99_ms)" -v b="$(tgt filtered .p99_ms)" 'BEGIN { printf "%.2f", a / b }')

row() { # target label
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" \
        "$(fmt "$(tgt "$1" .rps_median)" 0)" \
        "$(tgt "$1" '.rps_rounds | map(. * 1 | floor) | map(tostring) | join(" / ")')" \
        "$(fmt "$(tgt "$1" .p50_ms)" 2)" "$(fmt "$(tgt "$1" .p99_ms)" 2)" \
        "$(tgt "$1" .requests)" "$(tgt "$1" .errors)" "$(tgt "$1" .mean_response_bytes)"
}

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git status --porcelain 2>/dev/null)" ]] && COMMIT="$COMMIT (working tree has uncommitted changes)"
SUMMARY=$(
    cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $COMMIT — nproc $(nproc)

\`scripts/bench.sh\` on $(uname -sm), $(rustc --version 2>/dev/null || echo 'rustc ?'); SQLite stores in a temp dir;
load: $CONCURRENCY connections, $ROUNDS interleaved round(s) of ${WARMUP}s warm-up + ${DURATION}s measured per target,
load generator on the same machine as the gateway. Run: **$VALID**.

**Import** (\`casegraph import fatalities data/un/DPPADPOSS-FATALITIES.csv\` into a fresh store holding the missions,
$IMPORT_RUNS runs): median **$(fmt "$IMPORT_MEDIAN" 2) s** wall per process (runs: $IMPORT_RUNS_LIST s; CLI-reported median
$(fmt "$IMPORT_SELF_MEDIAN" 2) s). \`$IMPORT_LINE\`

**Grown store**: $GROW_LINE (grow_store ran ${GROW_SECS}s in all).

| target | req/s (median of rounds) | req/s per round | p50 ms | p99 ms | requests | errors | bytes/resp |
|---|---:|---|---:|---:|---:|---:|---:|
$(row typename '(a) `{ __typename }`, real data')
$(row cases100 "(b) \`cases(first: 100)\` + victims + mission, real data ($CASES100_NODES cases, $CASES100_VICTIMS victims)")
$(row filtered "filtered page, real data (totalCount $FILTERED_TOTAL)")
$(row "filtered_x$FACTOR" "filtered page, ${FACTOR}x data (totalCount $FILTERED_X_TOTAL)")

- throughput (b)/(a): **$(fmt "$RATIO_B_A" 3)** (median of per-round ratios)
- filtered page, ${FACTOR}x vs real: p50 **×$P50_X_REAL**, p99 **×$P99_X_REAL**, throughput ratio $(fmt "$RATIO_X_REAL" 3) (median of per-round ratios)
- p50/p99 are over all measured requests of all rounds; filtered page = \`cases(first: 20, filter: {hostStates: ["MLI"], victimNationalities: ["TCD"], from: "2015-01-01"}) { totalCount nodes { reference victims { nationality } } }\`
EOF
)

log "Summary"
echo "$SUMMARY"
mkdir -p "$(dirname "$RESULTS")"
if [[ ! -s "$RESULTS" ]]; then
    printf '# CaseGraph benchmark results\n\nAppended by `scripts/bench.sh` (one block per run). Compare ratios measured in the same run;\nabsolute figures depend on the machine and its load.\n' >"$RESULTS"
fi
printf '\n%s\n' "$SUMMARY" >>"$RESULTS"
echo "bench.sh: appended to $RESULTS" >&2
[[ "$LOADGEN_RC" == 0 && "$TOTAL_ERRORS" == 0 ]] || die "invalid run: the load generator saw errors (see $RESULTS)"
