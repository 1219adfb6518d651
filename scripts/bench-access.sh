#!/usr/bin/env bash
# CaseGraph access-enforcement benchmark ("who sees what"): one command, loopback only.
#
#   scripts/bench-access.sh
#
# The cost of the access plan and its enforcement point, measured as the issue asks: the same
# release binary serving the same data under two policies,
#   real  config/policy.toml as bundled;
#   open  the same file with every field and argument lowered to PUBLIC (roles kept, levels'
#         rules kept: the same cases are visible to the same principals), so that every field is
#         granted outright and no per-record decision is taken.
# Enforcement cannot be compiled out or switched off (security is never a build option): the
# all-PUBLIC policy is the baseline. The real policy also audits every read of CASE_PARTIES or
# above (one row per record read today), which the all-PUBLIC policy never triggers; to tell the
# two costs apart, a third gateway `real_noaudit` runs the real policy with `[access] audit =
# false` (BENCH_ATTRIBUTE_AUDIT=0 leaves it out).
#
# 1. builds release (`cargo build --release --bins --examples`);
# 2. imports the real UN data (CLI import) into two temporary SQLite stores;
# 3. starts one `examples/slow_protocol_upstream` for MLI (BENCH_DELAY_MS, default 0) and two
#    gateways on 127.0.0.1 with a kind-`protocol` connector to it (cache 3600 s: the join is
#    warm, so the figures are the gateway's, not the upstream's), log filter "warn";
# 4. principals: a UN analyst (every field granted by the plan under both policies) and the
#    Mali analyst (the host state: under the real policy every case field is decided per record);
# 5. queries: `page` = 100 cases with victims and missions; `joined` = 100 cases with
#    nationalProceedings { nationalReference stage court { name type } defendants { status } };
# 6. checks each (principal, query, gateway) once: same number of cases and no error;
# 7. runs examples/loadgen.rs at BENCH_CONCURRENCY connections, BENCH_ROUNDS interleaved rounds
#    (real, open, real, open, … per principal and query);
# 8. reads the plan cache counters from the real gateway's /metrics (hits, misses, seconds spent
#    planning) and prints min / median / max of the per-round throughputs and of the per-round
#    ratios real/open; appends the summary to bench/RESULTS.md.
#
# Knobs (environment): BENCH_CONCURRENCY=16 BENCH_DURATION=8 BENCH_WARMUP=2 BENCH_ROUNDS=4
# BENCH_DELAY_MS=0 BENCH_MAX_REQUESTS=2000000 BENCH_RESULTS=bench/RESULTS.md BENCH_KEEP=1
# BENCH_NO_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-access.sh
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"

CONCURRENCY=${BENCH_CONCURRENCY:-16}
DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-4}
DELAY_MS=${BENCH_DELAY_MS:-0}
MAX_REQUESTS=${BENCH_MAX_REQUESTS:-2000000}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
ATTRIBUTE_AUDIT=${BENCH_ATTRIBUTE_AUDIT:-1}
GWS=(real open)
[[ "$ATTRIBUTE_AUDIT" == 1 ]] && GWS+=(real_noaudit)

unset CASEGRAPH_STORE_URL RUST_LOG
require_tools cargo jq curl awk sed python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/casegraph-bench-access.XXXXXX")
bench_init

if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    log "Building release (cargo build --release --bins --examples)"
    cargo build --release --bins --examples
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN="$TARGET_DIR/release/casegraph"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
UPSTREAM="$TARGET_DIR/release/examples/slow_protocol_upstream"
for b in "$BIN" "$LOADGEN" "$UPSTREAM"; do [[ -x "$b" ]] || die "missing $b"; done

# ------------------------------------------------------------------------------- policies
python3 - config/policy.toml "$WORK/policy-open.toml" <<'PY'
import re, sys
src, dst = sys.argv[1], sys.argv[2]
out, section = [], None
for line in open(src, encoding="utf-8"):
    m = re.match(r"^\[(\w+)", line)
    if m:
        section = m.group(1)
    if section in ("fields", "arguments") and re.match(r'^"[^"]+" = ', line):
        key = line.split(" = ", 1)[0]
        roles = re.search(r"roles = \[[^\]]*\]", line)
        orgs = re.search(r"organisations = \[[^\]]*\]", line)
        if section == "fields" and (roles or orgs):
            extra = ", ".join(x.group(0) for x in (roles, orgs) if x)
            line = f'{key} = {{ level = "PUBLIC", {extra} }}\n'
        else:
            line = f'{key} = "PUBLIC"\n'
    if line.startswith("convicted_defendant_name ="):
        line = 'convicted_defendant_name = "PUBLIC"\n'
    out.append(line)
open(dst, "w", encoding="utf-8").write("".join(out))
PY

# ------------------------------------------------------------------------------- stores
declare -A GW_ADDR
for g in "${GWS[@]}"; do
    make_gateway_config "$WORK/$g" "$WORK/connectors"
    [[ $g == open ]] && printf '\n[access]\npolicy_file = "%s"\n' "$WORK/policy-open.toml" >>"$WORK/$g/casegraph.toml"
    [[ $g == real_noaudit ]] && printf '\n[access]\n# scripts/bench-access.sh: attribution only\naudit = false\n' >>"$WORK/$g/casegraph.toml"
done
log "Importing the real UN data into two temporary SQLite stores"
for g in "${GWS[@]}"; do import_real_data "$BIN" "$WORK/$g"; done
echo "  $(cat "$WORK/real/fatalities.out")" >&2

# ------------------------------------------------------------------------------- upstream
log "Starting the MLI protocol upstream (${DELAY_MS} ms per request)"
d="$WORK/upstream"
mkdir -p "$d"
"$UPSTREAM" --store "sqlite://$WORK/real/casegraph.db" --host-state MLI --listen 127.0.0.1:0 \
    --delay-ms "$DELAY_MS" --records-out "$d/records.json" >"$d/out" 2>"$d/log" &
track $!
UP=""
for _ in $(seq 1 300); do
    UP=$(sed -n 's|.*listening on http://\(127\.0\.0\.1:[0-9]*\).*|\1|p' "$d/log" | head -n 1)
    [[ -n "$UP" ]] && break
    sleep 0.1
done
[[ -n "$UP" ]] || die "the upstream did not start"
mkdir -p "$WORK/connectors"
cat >"$WORK/connectors/bench-mli.toml" <<EOF
# Written by scripts/bench-access.sh.
name = "Bench protocol upstream (MLI)"
kind = "protocol"
host_states = ["MLI"]
match_by = "un_reference"

[protocol]
base_url = "http://$UP"

[runtime]
batch_size = 100
cache_ttl_secs = 3600
retries = 0
EOF
for g in "${GWS[@]}"; do check_gateway_config "$BIN" "$WORK/$g"; done

log "Starting the gateways"
for g in "${GWS[@]}"; do
    start_gateway "$BIN" "$WORK/$g" "GW_ADDR_$g"
    v="GW_ADDR_$g"
    GW_ADDR[$g]=${!v}
    echo "  $g: http://${GW_ADDR[$g]}" >&2
done

declare -A TOKEN
TOKEN[un]=$("$BIN" dev-token --config "$WORK/real/casegraph.toml" --org UN --role un-analyst --sub bench-un)
TOKEN[mli]=$("$BIN" dev-token --config "$WORK/real/casegraph.toml" --org MLI --role member-state-analyst --sub bench-mli)

echo '{ cases(first: 100) { nodes { id reference incidentDate victims { category nationality harm } mission { code name status } } } }' >"$WORK/page.graphql"
echo '{ cases(first: 100) { nodes { reference nationalProceedings { nationalReference stage court { name type } defendants { status } } } } }' >"$WORK/joined.graphql"

# ------------------------------------------------------------------------------- checks
log "Checking every (principal, query, policy) once"
declare -A NODES JOINED
for p in un mli; do
    for q in page joined; do
        for g in "${GWS[@]}"; do
            f="$WORK/check_${p}_${q}_$g.json"
            "$LOADGEN" check --token "${TOKEN[$p]}" "http://${GW_ADDR[$g]}/graphql" "$WORK/$q.graphql" >"$f"
            NODES[$p,$q,$g]=$(jq '.data.cases.nodes | length' "$f")
            JOINED[$p,$q,$g]=$(jq '[.data.cases.nodes[] | (.nationalProceedings // []) | length] | add' "$f")
        done
        [[ "${NODES[$p,$q,real]}" == "${NODES[$p,$q,open]}" ]] || die "$p $q: the two policies give different pages"
        echo "  $p $q: ${NODES[$p,$q,real]} cases, ${JOINED[$p,$q,real]} national records" >&2
    done
done
[[ "${JOINED[mli,joined,real]}" -gt 0 ]] || die "the joined page joins nothing"

# ------------------------------------------------------------------------------- load
TARGETS=()
ARGS=(--token "${TOKEN[un]}")
for p in un mli; do
    for q in page joined; do
        for g in "${GWS[@]}"; do
            t="${p}_${q}_$g"
            TARGETS+=("$t")
            [[ $p != un ]] && ARGS+=(--token-for "$t" "${TOKEN[$p]}")
            ARGS+=(--target "$t" "http://${GW_ADDR[$g]}/graphql" "$WORK/$q.graphql")
        done
    done
done
log "Load: $CONCURRENCY connections, $ROUNDS interleaved rounds of ${WARMUP}s warm-up + ${DURATION}s: ${TARGETS[*]}"
LOADGEN_RC=0
"$LOADGEN" --concurrency "$CONCURRENCY" --warmup "$WARMUP" --duration "$DURATION" --rounds "$ROUNDS" \
    --max-requests "$MAX_REQUESTS" "${ARGS[@]}" >"$WORK/loadgen.jsonl" || LOADGEN_RC=$?
[[ -s "$WORK/loadgen.jsonl" ]] || die "the load generator produced nothing (exit $LOADGEN_RC)"

METRICS=$(curl -fsS --max-time 10 "http://${GW_ADDR[real]}/metrics")
HITS=$(awk '$1 == "casegraph_access_plans_total{cache=\"hit\"}" { print $2 }' <<<"$METRICS")
MISSES=$(awk '$1 == "casegraph_access_plans_total{cache=\"miss\"}" { print $2 }' <<<"$METRICS")
PLAN_S=$(awk '$1 == "casegraph_access_planning_seconds_total" { print $2 }' <<<"$METRICS")

# ------------------------------------------------------------------------------- summary
J="$WORK/loadgen.jsonl"
TOTAL_ERRORS=$(jq -s 'map(select(.kind == "target") | .errors) | add' "$J")
VALID="valid (0 errors)"
[[ "$TOTAL_ERRORS" == 0 && "$LOADGEN_RC" == 0 ]] || VALID="INVALID: $TOTAL_ERRORS errors, loadgen exit $LOADGEN_RC"
rounds() { jq -rs --arg t "$1" 'map(select(.kind == "round" and .target == $t) | .rps) | .[]' "$J"; }
mmm() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f / %.0f / %.0f", v[1], m, v[NR] }'; }
mmm3() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f / %.3f / %.3f", v[1], m, v[NR] }'; }
ratios() { # a b: per-round ratio a/b
    jq -rs --arg a "$1" --arg b "$2" \
        'map(select(.kind == "round")) | group_by(.round) | map((map(select(.target == $a))[0].rps) / (map(select(.target == $b))[0].rps)) | .[]' "$J"
}
tgt() { jq -r --arg t "$1" "select(.kind == \"target\" and .target == \$t) | $2" "$J"; }
row() {
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(rounds "$1" | mmm)" "$(fmt "$(tgt "$1" .p50_ms)" 2)" "$(fmt "$(tgt "$1" .p99_ms)" 2)" "$(tgt "$1" .requests)"
}
SUMMARY=$(
    cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $(bench_commit) — nproc $(nproc) — access plan: real policy vs all-PUBLIC

\`scripts/bench-access.sh\` on $(uname -sm), $(rustc --version 2>/dev/null || echo 'rustc ?'). Same release binary and real UN
data; \`real\` = config/policy.toml, \`open\` = every field and argument PUBLIC (same visibility). One MLI protocol upstream
(${DELAY_MS} ms), warm connector cache. Load: $CONCURRENCY connections, $ROUNDS interleaved rounds of ${WARMUP}s + ${DURATION}s per target,
load generator on the same 2 cores. Run: **$VALID**.

Pages: UN analyst ${NODES[un,page,real]} cases (${JOINED[un,joined,real]} national records joined), Mali analyst ${NODES[mli,page,real]} cases
(${JOINED[mli,joined,real]} joined). \`page\` = 100 cases with victims and missions; \`joined\` = 100 cases with nationalProceedings.

| target | req/s per round min / median / max | p50 ms | p99 ms | requests |
|---|---|---:|---:|---:|
$(for t in "${TARGETS[@]}"; do row "$t"; done)

Throughput ratio real / open, per round (min / median / max):
$(for p in un mli; do for q in page joined; do echo "- ${p} ${q}: $(ratios "${p}_${q}_real" "${p}_${q}_open" | mmm3)"; done; done)
$(if [[ "$ATTRIBUTE_AUDIT" == 1 ]]; then echo; echo "Attribution, real policy with its audit off / open (enforcement alone), per round (min / median / max):"; for p in un mli; do for q in page joined; do echo "- ${p} ${q}: $(ratios "${p}_${q}_real_noaudit" "${p}_${q}_open" | mmm3)"; done; done; fi)

Plan cache (real gateway, whole run incl. checks): ${HITS} hits, ${MISSES} misses (hit rate $(div "$HITS" "$((HITS + MISSES))" 4)),
$(awk -v s="$PLAN_S" -v m="$MISSES" 'BEGIN { if (m > 0) printf "%.1f", s / m * 1e6; else print "n/a" }') µs spent planning per planned operation.
EOF
)
log "Summary"
echo "$SUMMARY"
append_results "$RESULTS" "$SUMMARY"
[[ "$VALID" == valid* ]] || die "invalid run (see $RESULTS)"
