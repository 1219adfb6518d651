#!/usr/bin/env bash
# CaseGraph hostile-traffic benchmark (issue 9): one command, loopback only.
#
#   scripts/bench-hostile.sh
#
# While each attack runs, an analyst's normal query (`cases(first: 20, filter: {hostStates:
# ["MLI"]})` with victims) is measured next to the same query on the idle gateway, in the same
# run: interleaved rounds (round 1: idle, attack A, attack B, …; round 2: …), ratios taken per
# round and their median reported. Attacks (examples/hostile_load.rs):
#   fanout20, fanout39  the 1.7 KB fragment fan-outs (2^20 and 2^39 fields), 8 senders
#   list30k             a 30,000-item list argument written in the document (180 KB), 8 senders
#   slow2000            2,000 connections that never finish their headers (re-opened when closed)
#   burst               one principal sending the normal query from BENCH_BURST (512) clients at
#                       once: over its bound of requests running (rate_limits max_in_flight 8)
#   crowd               BENCH_BURST clients of as many principals sending it at once, each waiting
#                       as long as a 503's Retry-After says: the gateway at its concurrency limit
#                       (throughput and shed rate)
#   overrate            one principal (member-state-analyst, default rate limit) with 16 senders
#   idphang             the identity provider's JWKS endpoint accepts and never answers; the
#                       victims use its tokens (the gateway refreshes its keys every second)
#
# 1. builds release (`cargo build --release --bin casegraph --example hostile_load`);
# 2. imports the real UN data (CLI import) into a temporary SQLite store;
# 3. starts the example's identity provider and one gateway on 127.0.0.1: default limits
#    (max_in_flight 64, max_queued 128, queue_timeout_ms 1000, header_read_timeout_ms 10000),
#    the dev issuer and the identity provider both trusted, log filter "warn", no connectors;
#    rate limits: role un-analyst (victims, attackers of the fan-outs and the list, the crowd)
#    1,000,000/min so that only `overrate` meets the token bucket (its role keeps the default
#    600/min, burst 60); every principal keeps the default bound of 8 requests running;
# 4. runs the scenarios (BENCH_ROUNDS rounds, BENCH_WARMUP s for the attack to settle, then
#    BENCH_DURATION s measured, BENCH_VICTIMS closed-loop victim clients);
# 5. prints a summary and appends it (date, git commit, nproc) to bench/RESULTS.md.
#
# Knobs (environment): BENCH_ROUNDS=3 BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_VICTIMS=4
# BENCH_BURST=512 BENCH_SCENARIOS=idle,fanout20,… BENCH_RESULTS=bench/RESULTS.md BENCH_KEEP=1
# BENCH_NO_BUILD=1 (use the last release build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-hostile.sh
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
VICTIMS=${BENCH_VICTIMS:-4}
BURST=${BENCH_BURST:-512}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
SCENARIOS=${BENCH_SCENARIOS:-idle,fanout20,fanout39,list30k,slow2000,burst,crowd,overrate,idphang}

unset CASEGRAPH_STORE_URL RUST_LOG
require_tools cargo jq curl awk sed

WORK=$(mktemp -d "${TMPDIR:-/tmp}/casegraph-bench-hostile.XXXXXX")
bench_init

# ---------------------------------------------------------------------------------------- build
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    log "Building release (cargo build --release --bin casegraph --example hostile_load)"
    cargo build --release --bin casegraph --example hostile_load
fi
BIN="$TARGET_DIR/release/casegraph"
LOAD="$TARGET_DIR/release/examples/hostile_load"
[[ -x "$BIN" && -x "$LOAD" ]] || die "no release build in $TARGET_DIR/release"

# --------------------------------------------------------------------- identity provider, gateway
log "Starting the identity provider (examples/hostile_load.rs idp)"
"$LOAD" idp --listen 127.0.0.1:0 --jwk tests/fixtures/keys/rsa-test-jwk.json >"$WORK/idp.out" 2>"$WORK/idp.err" &
track $!
IDP=""
for _ in $(seq 1 100); do
    IDP=$(sed -n 's|^idp listening on \(http://127\.0\.0\.1:[0-9]*\)$|\1|p' "$WORK/idp.out" | head -n 1)
    [[ -n "$IDP" ]] && break
    sleep 0.1
done
[[ -n "$IDP" ]] || die "the identity provider did not start"

GW="$WORK/gw"
make_gateway_config "$GW" ""
CFG="$GW/casegraph.toml"
sed -i '/^\[rate_limits\.roles\]/a un-analyst = { requests_per_minute = 1000000, burst = 100000, max_in_flight = 8 }' "$CFG"
cat >>"$CFG" <<EOF

[auth.jwt]
issuer = "https://idp.bench/"
jwks_url = "$IDP/jwks"
algorithms = ["RS256"]
jwks_refresh_secs = 1
jwks_min_refetch_secs = 1
jwks_fetch_timeout_ms = 5000
EOF
check_gateway_config "$BIN" "$GW"
log "Importing the real UN data"
import_real_data "$BIN" "$GW"
start_gateway "$BIN" "$GW" ADDR
PID=$(cat "$GW/serve.pid")
RSS0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")

# ----------------------------------------------------------------------------------------- load
log "Scenarios ($ROUNDS round(s) of ${WARMUP}s settle + ${DURATION}s measured each, $VICTIMS victims): $SCENARIOS"
"$LOAD" run --url "http://$ADDR/graphql" --dev-key "$WORK/dev-issuer-key.pem" \
    --idp "$IDP" --idp-key tests/fixtures/keys/rsa-test-key.pem --pid "$PID" \
    --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" --victims "$VICTIMS" \
    --burst "$BURST" --scenarios "$SCENARIOS" >"$WORK/hostile.jsonl"
[[ -s "$WORK/hostile.jsonl" ]] || die "the load produced nothing"
kill -0 "$PID" 2>/dev/null || die "the gateway died during the run"
METRICS=$(curl -fsS --max-time 10 "http://$ADDR/metrics")
RSS1=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")

# ------------------------------------------------------------------------------------ summary
J="$WORK/hostile.jsonl"
# values SCENARIO JQ: one value per round.
values() { jq -r --arg s "$1" "select(.scenario == \$s) | $2" "$J"; }
med() { values "$1" "$2" | median; }
# Median over rounds of (scenario / idle) for the victims' JQ figure.
ratio() {
    jq -rs --arg s "$1" --arg f "$2" \
        'group_by(.round) | map((map(select(.scenario == $s))[0].victim[$f]) / (map(select(.scenario == "idle"))[0].victim[$f])) | .[]' "$J" | median
}
statuses() { jq -rs --arg s "$1" --arg w "$2" 'map(select(.scenario == $s) | .[$w].statuses) | reduce .[] as $m ({}; reduce ($m | to_entries[]) as $e (.; .[$e.key] += $e.value)) | to_entries | map("\(.key)×\(.value)") | join(" ")' "$J"; }
sum() { jq -rs --arg s "$1" "map(select(.scenario == \$s) | $2) | add // 0" "$J"; }
label() {
    case $1 in
        idle) echo "idle (no attack)" ;;
        fanout20) echo "fragment fan-out 2^20, 8 senders" ;;
        fanout39) echo "fragment fan-out 2^39, 8 senders" ;;
        list30k) echo "30,000-item list (180 KB), 8 senders" ;;
        slow2000) echo "2,000 slow connections" ;;
        burst) echo "burst: one principal, $BURST clients at once" ;;
        crowd) echo "crowd: $BURST principals at once" ;;
        overrate) echo "one principal over its rate, 16 senders" ;;
        idphang) echo "identity provider hangs" ;;
    esac
}
IFS=, read -r -a LIST <<<"$SCENARIOS"
ROWS=""
for s in "${LIST[@]}"; do
    if [[ $s == idle ]]; then
        r50="1" r99="1"
    else
        r50=$(fmt "$(ratio "$s" p50_ms)" 2) r99=$(fmt "$(ratio "$s" p99_ms)" 2)
    fi
    attack_p50=$(fmt "$(med "$s" '.attack.p50_ms // "nan"')" 2)
    ROWS+="| $(label "$s") | $(fmt "$(med "$s" .victim.p50_ms)" 2) | $(fmt "$(med "$s" .victim.p99_ms)" 2) | ×$r50 | ×$r99 | $(fmt "$(med "$s" .victim.ok_per_s)" 0) | $(statuses "$s" victim) | $(statuses "$s" attack) | $attack_p50 | $(fmt "$(med "$s" '.gateway_rss_kib / 1024')" 0) |"$'\n'
done
BURST_LINE=""
if [[ ",$SCENARIOS," == *,crowd,* ]]; then
    ok_s=$(jq -rs 'map(select(.scenario == "crowd") | .attack.ok_per_s + .victim.ok_per_s) | .[]' "$J" | median)
    shed=$(jq -rs 'map(select(.scenario == "crowd") | (.attack.statuses["503"] // 0) / ([.attack.statuses[]] | add)) | .[]' "$J" | median)
    vshed=$(jq -rs 'map(select(.scenario == "crowd") | (.victim.statuses["503"] // 0) / ([.victim.statuses[]] | add)) | .[]' "$J" | median)
    idle_ok=$(med idle .victim.ok_per_s)
    BURST_LINE="- **At the concurrency limit** (crowd of $BURST principals, max_in_flight 64, max_queued 128): $(fmt "$ok_s" 0) answered queries/s (crowd and victims; the $VICTIMS victims alone on the idle gateway: $(fmt "$idle_ok" 0)/s); **shed rate $(fmt "$(awk -v v="$shed" 'BEGIN { print v * 100 }')" 1)%** of the crowd's requests and $(fmt "$(awk -v v="$vshed" 'BEGIN { print v * 100 }')" 1)% of the victims' (503 OVERLOADED with Retry-After, which the crowd honours and the victims do not), medians of rounds"
fi
if [[ ",$SCENARIOS," == *,burst,* ]]; then
    BURST_LINE+=$'\n'"- one principal's burst: $(statuses burst attack) over all rounds (429 = over its 8 requests running)"
fi
SLOW_LINE=""
if [[ ",$SCENARIOS," == *,slow2000,* ]]; then
    SLOW_LINE="- slow connections closed by the gateway (header read timeout 10 s) during each round: $(values slow2000 .slow_connections_closed_by_gateway | tr '\n' ' ')"
fi
SUMMARY=$(
    cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $(bench_commit) — nproc $(nproc) — hostile traffic

\`scripts/bench-hostile.sh\` on $(uname -sm), $(rustc --version 2>/dev/null || echo 'rustc ?'). Real UN data in a temp SQLite store; one release
gateway with the default limits (max_in_flight 64, max_queued 128, queue_timeout_ms 1000, header_read_timeout_ms 10000,
max_fields 1000, max_list_items 500), log filter "warn", no connectors; the load (examples/hostile_load.rs) on the same
machine. $ROUNDS interleaved round(s) per scenario: ${WARMUP}s for the attack to settle, then ${DURATION}s with $VICTIMS closed-loop victim
clients (one un-analyst principal) sending \`{ cases(first: 20, filter: {hostStates: ["MLI"]}) { totalCount nodes { reference incidentDate victims { nationality harm } } } }\`.
Ratios are scenario / idle of the same round, median over rounds; p50/p99 are medians over rounds.

| scenario | victim p50 ms | victim p99 ms | p50 vs idle | p99 vs idle | victim ok/s | victim statuses | attack statuses | attack p50 ms | gateway RSS MiB |
|---|---:|---:|---:|---:|---:|---|---|---:|---:|
${ROWS}
$BURST_LINE
$SLOW_LINE
- gateway RSS: $((RSS0 / 1024)) MiB after start, $((RSS1 / 1024)) MiB after the run; /metrics at the end: $(echo "$METRICS" | awk '/^casegraph_(graphql_shed_total|graphql_rate_limited_total|connections_refused_total|graphql_timed_out_total) / { printf "%s %s; ", $1, $2 }')
EOF
)

log "Summary"
echo "$SUMMARY"
append_results "$RESULTS" "$SUMMARY"
