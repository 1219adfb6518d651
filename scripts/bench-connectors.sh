#!/usr/bin/env bash
# CaseGraph host-state connector benchmark: one command, reproducible, loopback only.
#
#   scripts/bench-connectors.sh
#
# What it measures: a query for 100 cases across three host states with their national
# proceedings, each host state's system delayed BENCH_DELAY_MS (20 ms) per request. The gateway
# calls the three systems in parallel, so the physical floor of the whole request is the largest
# upstream latency (the delay), not their sum.
#
# 1. builds release (`cargo build --release --bins --examples`);
# 2. imports the real UN data (CLI import of data/un) into two temporary SQLite stores;
# 3. starts three `examples/slow_protocol_upstream` servers on 127.0.0.1 (MLI, CAF, COD): the
#    connector protocol reference server behind a layer that sleeps BENCH_DELAY_MS before every
#    request and counts requests (GET /_count); records: one canonical record, marking PUBLIC, for
#    every real case of that host state, keyed by its real reference `MISSION-YYYYMMDD`;
# 4. starts two release gateways (simulators off, log filter "warn" so that no per-request
#    logging runs on the hot path, connectors = three kind-`protocol` files, match_by
#    un_reference, batch_size 100, retries 0 so that every upstream call is counted once and a
#    failure shows as an error):
#      cold  `cache_ttl_secs = 0`: a cached record is fresh while its age is < 0 s, i.e. never, so
#            every request calls every upstream (the cache is still written and read, as on a
#            real miss);
#      warm  `cache_ttl_secs = 3600`: after the first request every lookup is a cache hit;
# 5. cold: 1 connection (sequential), BENCH_COLD_ROUNDS interleaved rounds of
#      cold          the 100-case query with nationalProceedings { stage freshness { state } }
#      cold_no_proc  the same query without nationalProceedings (what the gateway costs alone)
#    p50/p99 against the floor, and upstream calls per request = lookups counted by the three
#    upstreams / GraphQL requests counted by the gateway (/metrics), warm-up included (both are
#    cold); expected 3;
# 6. warm: BENCH_CONCURRENCY connections, BENCH_ROUNDS interleaved rounds of
#      typename      `{ __typename }`
#      warm          the 100-case query with nationalProceedings, warm cache
#      warm_no_proc  the same query without nationalProceedings
#    all on the warm gateway; req/s, p50, p99 and the ratios (median of per-round ratios);
# 7. prints a summary and appends it (date, git commit, nproc) to bench/RESULTS.md.
#
# Every process it starts is killed on exit. Figures are medians and side-by-side ratios of one
# run on a shared machine; the load generator shares the cores with the gateway and upstreams.
#
# Knobs (environment): BENCH_DELAY_MS=20 BENCH_CONCURRENCY=32 BENCH_DURATION=10 BENCH_WARMUP=2
# BENCH_ROUNDS=3 BENCH_COLD_DURATION=10 BENCH_COLD_ROUNDS=3 BENCH_MAX_REQUESTS=2000000
# BENCH_RESULTS=bench/RESULTS.md BENCH_KEEP=1 (keep the temporary dir) BENCH_NO_BUILD=1 (use the
# binaries already built).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-connectors.sh
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"

DELAY_MS=${BENCH_DELAY_MS:-20}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
COLD_DURATION=${BENCH_COLD_DURATION:-10}
COLD_ROUNDS=${BENCH_COLD_ROUNDS:-3}
MAX_REQUESTS=${BENCH_MAX_REQUESTS:-2000000}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
STATES=(MLI CAF COD)

unset CASEGRAPH_STORE_URL RUST_LOG
require_tools cargo jq curl awk sed

WORK=$(mktemp -d "${TMPDIR:-/tmp}/casegraph-bench-connectors.XXXXXX")
bench_init

# ---------------------------------------------------------------------------------------- build
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    log "Building release (cargo build --release --bins --examples)"
    cargo build --release --bins --examples
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN="$TARGET_DIR/release/casegraph"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
UPSTREAM="$TARGET_DIR/release/examples/slow_protocol_upstream"
for b in "$BIN" "$LOADGEN" "$UPSTREAM"; do [[ -x "$b" ]] || die "missing $b after the build"; done

# ---------------------------------------------------------------------------------- stores
COLD="$WORK/cold"
WARM="$WORK/warm"
make_gateway_config "$COLD" "$WORK/connectors-cold"
make_gateway_config "$WARM" "$WORK/connectors-warm"
log "Importing the real UN data into two temporary SQLite stores"
import_real_data "$BIN" "$COLD"
import_real_data "$BIN" "$WARM"
echo "  $(cat "$COLD/fatalities.out")" >&2

# ------------------------------------------------------------------------------- upstreams
log "Starting three slow protocol upstreams (${DELAY_MS} ms per request) on 127.0.0.1"
declare -A UP_ADDR
for s in "${STATES[@]}"; do
    d="$WORK/upstream-$s"
    mkdir -p "$d"
    "$UPSTREAM" --store "sqlite://$COLD/casegraph.db" --host-state "$s" --listen 127.0.0.1:0 \
        --delay-ms "$DELAY_MS" --records-out "$d/records.json" >"$d/out" 2>"$d/log" &
    pid=$!
    track "$pid"
    addr=""
    for _ in $(seq 1 300); do
        addr=$(sed -n 's|.*listening on http://\(127\.0\.0\.1:[0-9]*\).*|\1|p' "$d/log" | head -n 1)
        [[ -n "$addr" ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$d/log" >&2; die "the $s upstream exited"; }
        sleep 0.1
    done
    [[ -n "$addr" ]] || die "the $s upstream did not start listening within 30 s"
    UP_ADDR[$s]=$addr
    echo "  $s: http://$addr  ($(sed -n 's/.*(\([0-9]* records\).*/\1/p' "$d/log"); marking: $(jq -r '[.[].marking] | unique | join(",")' "$d/records.json"))" >&2
done

# Sum over the three upstreams of a /_count member.
upstream_sum() {
    local s total=0 v
    for s in "${STATES[@]}"; do
        v=$(curl -fsS --max-time 10 "http://${UP_ADDR[$s]}/_count" | jq -r ".$1")
        total=$((total + v))
    done
    echo "$total"
}
upstream_each() { # member → "MLI=n CAF=n COD=n"
    local s out=""
    for s in "${STATES[@]}"; do
        out="$out $s=$(curl -fsS --max-time 10 "http://${UP_ADDR[$s]}/_count" | jq -r ".$1")"
    done
    echo "${out# }"
}

# ------------------------------------------------------------------------------- connectors
write_connectors() { # dir ttl
    local dir=$1 ttl=$2 s lower
    mkdir -p "$dir"
    for s in "${STATES[@]}"; do
        lower=$(echo "$s" | tr '[:upper:]' '[:lower:]')
        cat >"$dir/bench-$lower.toml" <<EOF
# Written by scripts/bench-connectors.sh: examples/slow_protocol_upstream for $s.
name = "Bench slow protocol upstream ($s)"
kind = "protocol"
host_states = ["$s"]
match_by = "un_reference"

[runtime]
timeout_ms = 2000
retries = 0
batch_size = 100
cache_ttl_secs = $ttl
max_stale_secs = 86400

[protocol]
base_url = "http://${UP_ADDR[$s]}"
EOF
    done
}
write_connectors "$WORK/connectors-cold" 0
write_connectors "$WORK/connectors-warm" 3600
check_gateway_config "$BIN" "$COLD"
check_gateway_config "$BIN" "$WARM"

# ---------------------------------------------------------------------------------- gateways
TOKEN=$("$BIN" dev-token --config "$COLD/casegraph.toml" --org UN --role un-analyst --sub bench-connectors)
log "Starting the release gateways (127.0.0.1; cold: cache_ttl_secs 0, warm: 3600)"
start_gateway "$BIN" "$COLD" COLD_ADDR
start_gateway "$BIN" "$WARM" WARM_ADDR
echo "  cold: http://$COLD_ADDR   warm: http://$WARM_ADDR" >&2

Q="$WORK/queries"
mkdir -p "$Q"
FILTER='filter: {hostStates: ["MLI", "CAF", "COD"]}'
echo '{ __typename }' >"$Q/typename.graphql"
echo "{ cases(first: 100, $FILTER) { nodes { reference nationalProceedings { stage freshness { state } } } } }" >"$Q/proc.graphql"
echo "{ cases(first: 100, $FILTER) { nodes { reference } } }" >"$Q/no_proc.graphql"
echo "{ cases(first: 100, $FILTER) { nodes { reference hostState nationalProceedings { stage freshness { state } } } } }" >"$Q/check.graphql"
echo '{ connectors { id calls failures cacheHits latency { p50Ms p95Ms p99Ms } } }' >"$Q/connectors.graphql"

log "Checking the queries"
lookups0=$(upstream_sum lookups)
"$LOADGEN" check --token "$TOKEN" "http://$COLD_ADDR/graphql" "$Q/check.graphql" >"$WORK/check_cold.json"
CHECK_LOOKUPS=$(($(upstream_sum lookups) - lookups0))
"$LOADGEN" check --token "$TOKEN" "http://$WARM_ADDR/graphql" "$Q/check.graphql" >"$WORK/check_warm1.json"
"$LOADGEN" check --token "$TOKEN" "http://$WARM_ADDR/graphql" "$Q/check.graphql" >"$WORK/check_warm2.json"
for q in typename proc no_proc; do
    "$LOADGEN" check --token "$TOKEN" "http://$WARM_ADDR/graphql" "$Q/$q.graphql" >/dev/null
done
NODES=$(jq '.data.cases.nodes | length' "$WORK/check_cold.json")
BY_STATE=$(jq -r '.data.cases.nodes | group_by(.hostState) | map("\(.[0].hostState) \(length)") | join(", ")' "$WORK/check_cold.json")
WITH_PROC=$(jq '[.data.cases.nodes[] | select((.nationalProceedings | length) > 0)] | length' "$WORK/check_cold.json")
FRESH_COLD=$(jq -r '[.data.cases.nodes[].nationalProceedings[]?.freshness.state] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$WORK/check_cold.json")
FRESH_WARM=$(jq -r '[.data.cases.nodes[].nationalProceedings[]?.freshness.state] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$WORK/check_warm2.json")
STATES_ON_PAGE=$(jq '.data.cases.nodes | map(.hostState) | unique | length' "$WORK/check_cold.json")
echo "  page: $NODES cases ($BY_STATE); with proceedings: $WITH_PROC; lookups for one cold request: $CHECK_LOOKUPS" >&2
echo "  freshness: cold gateway [$FRESH_COLD]; warm gateway, 2nd request [$FRESH_WARM]" >&2
[[ "$NODES" == 100 && "$WITH_PROC" == 100 ]] || die "the page does not hold 100 cases with proceedings: not a meaningful benchmark"
[[ "$STATES_ON_PAGE" == 3 ]] || echo "  WARNING: the page covers $STATES_ON_PAGE host state(s), not 3" >&2

# ----------------------------------------------------------------------------------- cold run
log "Cold: 1 connection, $COLD_ROUNDS interleaved round(s) of ${WARMUP}s warm-up + ${COLD_DURATION}s per target"
lookups0=$(upstream_sum lookups)
requests_up0=$(upstream_sum requests)
keys0=$(upstream_sum lookup_keys)
each0=$(upstream_each lookups)
gw0=$(gateway_requests "$COLD_ADDR")
COLD_RC=0
"$LOADGEN" --token "$TOKEN" --concurrency 1 --warmup "$WARMUP" --duration "$COLD_DURATION" \
    --rounds "$COLD_ROUNDS" --max-requests "$MAX_REQUESTS" \
    --target cold "http://$COLD_ADDR/graphql" "$Q/proc.graphql" \
    --target cold_no_proc "http://$COLD_ADDR/graphql" "$Q/no_proc.graphql" \
    >"$WORK/cold.jsonl" || COLD_RC=$?
[[ -s "$WORK/cold.jsonl" ]] || die "the load generator produced nothing (exit $COLD_RC)"
COLD_LOOKUPS=$(($(upstream_sum lookups) - lookups0))
COLD_UP_REQUESTS=$(($(upstream_sum requests) - requests_up0))
COLD_KEYS=$(($(upstream_sum lookup_keys) - keys0))
COLD_EACH_AFTER=$(upstream_each lookups)
COLD_GW=$(awk -v a="$(gateway_requests "$COLD_ADDR")" -v b="$gw0" 'BEGIN { print a - b }')
"$LOADGEN" check --token "$TOKEN" "http://$COLD_ADDR/graphql" "$Q/connectors.graphql" >"$WORK/connectors_cold.json"

# ----------------------------------------------------------------------------------- warm run
log "Warm: $CONCURRENCY connections, $ROUNDS interleaved round(s) of ${WARMUP}s warm-up + ${DURATION}s per target"
wl0=$(upstream_sum lookups)
wg0=$(gateway_requests "$WARM_ADDR")
WARM_RC=0
"$LOADGEN" --token "$TOKEN" --concurrency "$CONCURRENCY" --warmup "$WARMUP" --duration "$DURATION" \
    --rounds "$ROUNDS" --max-requests "$MAX_REQUESTS" \
    --target typename "http://$WARM_ADDR/graphql" "$Q/typename.graphql" \
    --target warm "http://$WARM_ADDR/graphql" "$Q/proc.graphql" \
    --target warm_no_proc "http://$WARM_ADDR/graphql" "$Q/no_proc.graphql" \
    >"$WORK/warm.jsonl" || WARM_RC=$?
[[ -s "$WORK/warm.jsonl" ]] || die "the load generator produced nothing (exit $WARM_RC)"
WARM_LOOKUPS=$(($(upstream_sum lookups) - wl0))
WARM_GW=$(awk -v a="$(gateway_requests "$WARM_ADDR")" -v b="$wg0" 'BEGIN { print a - b }')
"$LOADGEN" check --token "$TOKEN" "http://$WARM_ADDR/graphql" "$Q/connectors.graphql" >"$WORK/connectors_warm.json"

# ------------------------------------------------------------------------------------ summary
tgt() { jq -r --arg t "$2" "select(.kind == \"target\" and .target == \$t) | $3" "$1"; }
round_ratio() { # file a b → median over rounds of rps(a)/rps(b)
    jq -rs --arg a "$2" --arg b "$3" \
        'map(select(.kind == "round")) | group_by(.round) | map((map(select(.target == $a))[0].rps) / (map(select(.target == $b))[0].rps)) | .[]' "$1" | median
}
C="$WORK/cold.jsonl"
W="$WORK/warm.jsonl"
# Only `cold` reaches the upstreams (cold_no_proc selects no proceedings): its requests, warm-ups
# included (they are cold too), are the denominator. The gateway's own count of all requests
# (/metrics) must equal both targets' requests sent.
COLD_REQ_ALL=$(tgt "$C" cold '.requests + .errors + .warmup_requests')
NOPROC_REQ_ALL=$(tgt "$C" cold_no_proc '.requests + .errors + .warmup_requests')
CALLS_PER_REQ=$(div "$COLD_LOOKUPS" "$COLD_REQ_ALL" 3)
KEYS_PER_REQ=$(div "$COLD_KEYS" "$COLD_REQ_ALL" 1)
COLD_P50=$(tgt "$C" cold .p50_ms)
COLD_P99=$(tgt "$C" cold .p99_ms)
NOPROC_P50=$(tgt "$C" cold_no_proc .p50_ms)
ABOVE_FLOOR=$(awk -v p="$COLD_P50" -v f="$DELAY_MS" 'BEGIN { printf "%.2f", p - f }')
OVER_FLOOR=$(div "$COLD_P50" "$DELAY_MS" 2)
CONNECTOR_PATH=$(awk -v p="$COLD_P50" -v n="$NOPROC_P50" 'BEGIN { printf "%.2f", p - n }')
UP_LAT=$(jq -r '.data.connectors | map("\(.id) p50 \(.latency.p50Ms) / p99 \(.latency.p99Ms) ms") | join("; ")' "$WORK/connectors_cold.json")
WARM_CALLS_PER_REQ=$(div "$WARM_LOOKUPS" "$WARM_GW" 4)
RATIO_WARM_TN=$(round_ratio "$W" warm typename)
RATIO_WARM_NOPROC=$(round_ratio "$W" warm warm_no_proc)
ERR_C=$(jq -s 'map(select(.kind == "target") | .errors) | add' "$C")
ERR_W=$(jq -s 'map(select(.kind == "target") | .errors) | add' "$W")
if [[ "$ERR_C" == 0 && "$ERR_W" == 0 && "$COLD_RC" == 0 && "$WARM_RC" == 0 ]]; then
    VALID="valid (0 errors)"
else
    VALID="INVALID: $ERR_C cold / $ERR_W warm errors, loadgen exit $COLD_RC / $WARM_RC"
fi

row() { # file target label
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$3" \
        "$(fmt "$(tgt "$1" "$2" .rps_median)" 0)" \
        "$(tgt "$1" "$2" '.rps_rounds | map(. * 1 | floor) | map(tostring) | join(" / ")')" \
        "$(fmt "$(tgt "$1" "$2" .p50_ms)" 2)" "$(fmt "$(tgt "$1" "$2" .p99_ms)" 2)" \
        "$(tgt "$1" "$2" .requests)" "$(tgt "$1" "$2" .errors)"
}

SUMMARY=$(
    cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $(bench_commit) — nproc $(nproc) — host-state connectors

\`scripts/bench-connectors.sh\` on $(uname -sm), $(rustc --version 2>/dev/null || echo 'rustc ?'). Real UN data in temp SQLite
stores; three \`examples/slow_protocol_upstream\` (protocol reference server + ${DELAY_MS} ms sleep per request) for MLI, CAF,
COD, records for every real case of each, marking PUBLIC; connectors kind \`protocol\`, match_by un_reference,
batch_size 100, retries 0; gateways: release, simulators off, log filter "warn" (no per-request logging), principal
UN analyst. Load generator, gateways and upstreams share the machine. Run: **$VALID**.

Query: \`{ cases(first: 100, $FILTER) { nodes { reference nationalProceedings { stage freshness { state } } } } }\`
— page: $NODES cases ($BY_STATE), $WITH_PROC with proceedings; freshness cold [$FRESH_COLD], warm [$FRESH_WARM].

**Cold** (gateway with \`cache_ttl_secs = 0\`: no lookup is ever served from the cache), 1 connection, $COLD_ROUNDS interleaved
round(s) of ${WARMUP}s warm-up + ${COLD_DURATION}s:

| target | req/s (median of rounds) | req/s per round | p50 ms | p99 ms | requests | errors |
|---|---:|---|---:|---:|---:|---:|
$(row "$C" cold "cold: with nationalProceedings (3 upstreams × ${DELAY_MS} ms, in parallel)")
$(row "$C" cold_no_proc "same page without nationalProceedings")

- p50 **$(fmt "$COLD_P50" 2) ms** vs the ${DELAY_MS} ms floor: **+$ABOVE_FLOOR ms** (×$OVER_FLOOR); p99 $(fmt "$COLD_P99" 2) ms.
  Of the p50, the page without proceedings takes $(fmt "$NOPROC_P50" 2) ms; adding the proceedings adds $CONNECTOR_PATH ms
  (the ${DELAY_MS} ms upstream sleep included). Gateway-measured upstream call latency: $UP_LAT.
- upstream calls per request: **$CALLS_PER_REQ** (expected 3) = $COLD_LOOKUPS lookups ($each0 → $COLD_EACH_AFTER) / $COLD_REQ_ALL
  requests of \`cold\`, warm-ups included (the gateway's /metrics counted $COLD_GW = $COLD_REQ_ALL + $NOPROC_REQ_ALL of the page
  without proceedings); keys per request $KEYS_PER_REQ; every upstream request was a lookup
  ($COLD_UP_REQUESTS requests = $COLD_LOOKUPS lookups: no health probes on the hot path); the check request alone made $CHECK_LOOKUPS.

**Warm** (gateway with \`cache_ttl_secs = 3600\`, cache filled before the run), $CONCURRENCY connections, $ROUNDS interleaved round(s)
of ${WARMUP}s warm-up + ${DURATION}s:

| target | req/s (median of rounds) | req/s per round | p50 ms | p99 ms | requests | errors |
|---|---:|---|---:|---:|---:|---:|
$(row "$W" typename '`{ __typename }`')
$(row "$W" warm "warm: with nationalProceedings")
$(row "$W" warm_no_proc "same page without nationalProceedings")

- throughput warm / \`{ __typename }\`: **$(fmt "$RATIO_WARM_TN" 3)**; warm / same page without proceedings: **$(fmt "$RATIO_WARM_NOPROC" 3)**
  (medians of per-round ratios)
- upstream calls during the warm run: $WARM_LOOKUPS for $WARM_GW requests ($WARM_CALLS_PER_REQ per request)
- p50/p99 are over all measured requests of all rounds
EOF
)

log "Summary"
echo "$SUMMARY"
append_results "$RESULTS" "$SUMMARY"
[[ "$VALID" == valid* ]] || die "invalid run (see $RESULTS)"
