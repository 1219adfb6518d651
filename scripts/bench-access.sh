#!/usr/bin/env bash
# CaseGraph access-enforcement benchmark ("who sees what"): one command, loopback only.
#
#   scripts/bench-access.sh
#
# The cost of enforcement: requests/s and p50/p99 of a 100-case query with victims' names and
# service numbers, as a UN analyst (everything granted) and as Member-State analysts (role
# member-state-analyst; BENCH_MS_ORGS, default "MLI GBR"), next to the same query on a binary
# with the enforcement compiled out (`--features bench-no-enforcement`, a benchmark-only cargo
# feature: never in the default build, never a runtime switch). Auditing is ON in every
# measured gateway (`[access] audit = true`, the default) unless a target says "noaudit".
#
# Under config/policy.toml a Member State sees the cases it is related to (host state, victims'
# nationality or contributing country). MLI is the host state of every MINUSMA case, and
# HOST_STATE grants CASE_PARTIES, so MLI is denied nothing on its 72 cases: it measures scoping
# and per-field decisions without denials. GBR (a contributing state whose nationals died in
# cases with victims of other states) is denied the `name` and `serviceNumber` of those other
# victims: it measures enforcement with FORBIDDEN_FIELD errors (partial answers).
#
# 1. builds release twice and copies each binary to $TARGET_DIR/bench/:
#      cargo build --release --features bench-no-enforcement --bin casegraph → casegraph-noenf
#      cargo build --release --bins --examples                                 → casegraph-enf
#    (feature build first, so that target/release/casegraph is the default build afterwards);
# 2. imports the real UN data (CLI import) into one temporary SQLite store per gateway;
# 3. starts the gateways on 127.0.0.1 (no connectors, simulators off, log filter "warn" so that
#    no per-request logging runs on the hot path):
#      enf     default binary, audit on
#      noenf   bench-no-enforcement binary, audit on
#      enf_noaudit (unless BENCH_AUDIT_OFF=0) default binary, audit off: what the audit costs
# 4. checks each (principal, gateway) with 5 sequential requests: cases, FORBIDDEN_FIELD errors,
#    audit rows written per request (rows counted in the store's audit_log with sqlite3/python3);
# 5. runs examples/loadgen.rs at BENCH_CONCURRENCY connections, BENCH_ROUNDS interleaved rounds:
#      un_enf un_noenf <ms>_enf <ms>_noenf … [un_enf_noaudit <last ms>_enf_noaudit]
#    the enforced Member-State targets alone may answer with errors, and only FORBIDDEN_FIELD
#    ones (`--allow-error-code-for <ms>_enf FORBIDDEN_FIELD`); every other target must be error
#    free;
# 6. counts audit rows written during the load (right after it, and once the writer has caught
#    up), per GraphQL request the gateway counted;
# 7. prints a summary and appends it (date, git commit, nproc) to bench/RESULTS.md.
#
# Every process it starts is killed on exit. Figures are medians and side-by-side ratios of one
# run on a shared machine; the load generator shares the cores with the gateways.
#
# Knobs (environment): BENCH_CONCURRENCY=32 BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_ROUNDS=3
# BENCH_MAX_REQUESTS=2000000 BENCH_MS_ORGS="MLI GBR" BENCH_AUDIT_OFF=1 BENCH_AUDIT_DRAIN_SECS=120
# BENCH_RESULTS=bench/RESULTS.md BENCH_KEEP=1 BENCH_NO_BUILD=1 (use target/bench/casegraph-*).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_NAME=bench-access.sh
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"

CONCURRENCY=${BENCH_CONCURRENCY:-32}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
MAX_REQUESTS=${BENCH_MAX_REQUESTS:-2000000}
AUDIT_OFF=${BENCH_AUDIT_OFF:-1}
DRAIN_SECS=${BENCH_AUDIT_DRAIN_SECS:-120}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
CHECKS=5
read -r -a MS_ORGS <<<"${BENCH_MS_ORGS:-MLI GBR}"
[[ ${#MS_ORGS[@]} -ge 1 ]] || die "BENCH_MS_ORGS names no Member State"

unset CASEGRAPH_STORE_URL RUST_LOG
require_tools cargo jq curl awk sed cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/casegraph-bench-access.XXXXXX")
bench_init

# ---------------------------------------------------------------------------------------- build
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
mkdir -p "$TARGET_DIR/bench"
ENF_BIN="$TARGET_DIR/bench/casegraph-enf"
NOENF_BIN="$TARGET_DIR/bench/casegraph-noenf"
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    log "Building release with enforcement compiled out (cargo build --release --features bench-no-enforcement --bin casegraph)"
    cargo build --release --features bench-no-enforcement --bin casegraph
    cp "$TARGET_DIR/release/casegraph" "$NOENF_BIN.tmp" && mv "$NOENF_BIN.tmp" "$NOENF_BIN"
    log "Building the default release (cargo build --release --bins --examples)"
    cargo build --release --bins --examples
    cp "$TARGET_DIR/release/casegraph" "$ENF_BIN.tmp" && mv "$ENF_BIN.tmp" "$ENF_BIN"
fi
LOADGEN="$TARGET_DIR/release/examples/loadgen"
for b in "$ENF_BIN" "$NOENF_BIN" "$LOADGEN"; do [[ -x "$b" ]] || die "missing $b"; done
cmp -s "$ENF_BIN" "$NOENF_BIN" && die "$ENF_BIN and $NOENF_BIN are the same file: the feature build did not happen"

# count_audit DIR: rows in DIR's audit_log.
count_audit() {
    local db="$1/casegraph.db"
    if command -v sqlite3 >/dev/null; then
        sqlite3 -readonly -cmd '.timeout 10000' "$db" 'SELECT count(*) FROM audit_log;'
    else
        python3 -c 'import sqlite3, sys; c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=10); print(c.execute("SELECT count(*) FROM audit_log").fetchone()[0])' "$db"
    fi
}
command -v sqlite3 >/dev/null || command -v python3 >/dev/null || die "sqlite3 or python3 is required to count audit rows"

# wait_audit_stable DIR: waits (at most DRAIN_SECS) until the audit row count stops moving for
# 2 s; prints the count and the seconds waited.
wait_audit_stable() {
    local dir=$1 last=-1 n=0 t0 i stable=0
    t0=$(now)
    for i in $(seq 1 $((DRAIN_SECS * 2))); do
        n=$(count_audit "$dir")
        if [[ "$n" == "$last" ]]; then
            stable=$((stable + 1))
            [[ $stable -ge 4 ]] && break
        else
            stable=0
        fi
        last=$n
        sleep 0.5
    done
    echo "$n $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a - 2 }')"
}

# -------------------------------------------------------------------------------- gateways
GWS=(enf noenf)
[[ "$AUDIT_OFF" == 1 ]] && GWS+=(enf_noaudit)
declare -A GW_BIN=([enf]="$ENF_BIN" [noenf]="$NOENF_BIN" [enf_noaudit]="$ENF_BIN")
declare -A GW_AUDIT=([enf]=true [noenf]=true [enf_noaudit]=false)
declare -A GW_ADDR
log "Importing the real UN data into one temporary SQLite store per gateway"
for g in "${GWS[@]}"; do
    d="$WORK/$g"
    make_gateway_config "$d" ""
    printf '\n[access]\n# scripts/bench-access.sh\naudit = %s\n' "${GW_AUDIT[$g]}" >>"$d/casegraph.toml"
    check_gateway_config "${GW_BIN[$g]}" "$d"
    import_real_data "${GW_BIN[$g]}" "$d"
done
echo "  $(cat "$WORK/enf/fatalities.out")" >&2

declare -A TOKEN
TOKEN[un]=$("$ENF_BIN" dev-token --config "$WORK/enf/casegraph.toml" --org UN --role un-analyst --sub bench-un-analyst)
PRINCIPALS=(un)
for org in "${MS_ORGS[@]}"; do
    p=$(echo "$org" | tr '[:upper:]' '[:lower:]')
    PRINCIPALS+=("$p")
    TOKEN[$p]=$("$ENF_BIN" dev-token --config "$WORK/enf/casegraph.toml" --org "$org" --role member-state-analyst --sub "bench-$p-analyst")
done
LAST_MS=${PRINCIPALS[${#PRINCIPALS[@]} - 1]}

log "Starting the release gateways (127.0.0.1)"
for g in "${GWS[@]}"; do
    start_gateway "${GW_BIN[$g]}" "$WORK/$g" "GW_ADDR_$g"
    v="GW_ADDR_$g"
    GW_ADDR[$g]=${!v}
    echo "  $g: http://${GW_ADDR[$g]}  (binary $(basename "${GW_BIN[$g]}"), audit ${GW_AUDIT[$g]})" >&2
done

Q="$WORK/query.graphql"
QUERY='{ cases(first: 100) { nodes { id reference incidentDate summary victims { category nationality name serviceNumber } mission { code name } } } }'
echo "$QUERY" >"$Q"

# ------------------------------------------------------------------------------------ checks
log "Checking each principal on each gateway ($CHECKS sequential requests each)"
declare -A CK_NODES CK_ERRS CK_CODES CK_ROWS CK_TOTAL CK_DENIED
for g in "${GWS[@]}"; do
    for p in "${PRINCIPALS[@]}"; do
        tok=${TOKEN[$p]}
        before=$(count_audit "$WORK/$g")
        for i in $(seq 1 "$CHECKS"); do
            "$LOADGEN" check --token "$tok" --allow-error-code FORBIDDEN_FIELD "http://${GW_ADDR[$g]}/graphql" "$Q" >"$WORK/check_${p}_$g.json"
        done
        read -r after _ < <(wait_audit_stable "$WORK/$g")
        f="$WORK/check_${p}_$g.json"
        CK_NODES[$p,$g]=$(jq '.data.cases.nodes | length' "$f")
        CK_ERRS[$p,$g]=$(jq '.errors // [] | length' "$f")
        CK_CODES[$p,$g]=$(jq -r '[.errors // [] | .[].extensions.code] | unique | join(",")' "$f")
        CK_ROWS[$p,$g]=$(div $((after - before)) "$CHECKS" 1)
        CK_DENIED[$p,$g]=$(jq -r '[.errors // [] | .[].path | last] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$f")
        CK_TOTAL[$p,$g]=$(curl -fsS --max-time 10 -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
            -d '{"query":"{ cases(first: 1) { totalCount } }"}' "http://${GW_ADDR[$g]}/graphql" | jq '.data.cases.totalCount')
        echo "  $p on $g: ${CK_NODES[$p,$g]} cases on the page (totalCount ${CK_TOTAL[$p,$g]}), ${CK_ERRS[$p,$g]} errors [${CK_CODES[$p,$g]}: ${CK_DENIED[$p,$g]}], $(jq '[.data.cases.nodes[].victims | length] | add' "$f") victims, audit rows/request ${CK_ROWS[$p,$g]}" >&2
    done
done
# The principals must see what the policy says on the default binary, and the feature must
# really remove the enforcement on the other.
[[ "${CK_NODES[un,enf]}" == 100 && "${CK_ERRS[un,enf]}" == 0 ]] || die "the UN analyst should read 100 cases without errors"
DENIALS=0
for p in "${PRINCIPALS[@]}"; do
    [[ $p == un ]] && continue
    [[ "${CK_NODES[$p,enf]}" -gt 0 ]] || die "the $p analyst sees no case: not a meaningful benchmark"
    [[ -z "${CK_CODES[$p,enf]}" || "${CK_CODES[$p,enf]}" == FORBIDDEN_FIELD ]] || die "the $p analyst got errors other than FORBIDDEN_FIELD"
    [[ "${CK_ERRS[$p,enf]}" -gt 0 ]] && DENIALS=$((DENIALS + 1))
done
[[ $DENIALS -gt 0 ]] || die "no Member-State principal gets FORBIDDEN_FIELD errors on the default binary: the denied scenario is not exercised"
for p in "${PRINCIPALS[@]}"; do
    [[ "${CK_ERRS[$p,noenf]}" == 0 && "${CK_NODES[$p,noenf]}" == 100 ]] || die "the no-enforcement binary still restricts the $p analyst"
done

# -------------------------------------------------------------------------------------- load
TARGETS=()
for p in "${PRINCIPALS[@]}"; do TARGETS+=("${p}_enf" "${p}_noenf"); done
[[ "$AUDIT_OFF" == 1 ]] && TARGETS+=(un_enf_noaudit "${LAST_MS}_enf_noaudit")
ARGS=(--token "${TOKEN[un]}")
for t in "${TARGETS[@]}"; do
    p=${t%%_*}
    [[ $p != un ]] && ARGS+=(--token-for "$t" "${TOKEN[$p]}")
    [[ $p != un && $t == *_enf* ]] && ARGS+=(--allow-error-code-for "$t" FORBIDDEN_FIELD)
done
for t in "${TARGETS[@]}"; do
    g=${t#*_}
    ARGS+=(--target "$t" "http://${GW_ADDR[$g]}/graphql" "$Q")
done
declare -A ROWS0 REQ0 ROWS_END ROWS_FINAL DRAIN REQ_D
for g in "${GWS[@]}"; do
    ROWS0[$g]=$(count_audit "$WORK/$g")
    REQ0[$g]=$(gateway_requests "${GW_ADDR[$g]}")
done
log "Load: $CONCURRENCY connections, $ROUNDS interleaved round(s) of ${WARMUP}s warm-up + ${DURATION}s per target: ${TARGETS[*]}"
LOADGEN_RC=0
"$LOADGEN" --concurrency "$CONCURRENCY" --warmup "$WARMUP" --duration "$DURATION" --rounds "$ROUNDS" \
    --max-requests "$MAX_REQUESTS" "${ARGS[@]}" >"$WORK/loadgen.jsonl" || LOADGEN_RC=$?
[[ -s "$WORK/loadgen.jsonl" ]] || die "the load generator produced nothing (exit $LOADGEN_RC)"
for g in "${GWS[@]}"; do
    ROWS_END[$g]=$(count_audit "$WORK/$g")
    REQ_D[$g]=$(awk -v a="$(gateway_requests "${GW_ADDR[$g]}")" -v b="${REQ0[$g]}" 'BEGIN { print a - b }')
done
log "Waiting for the audit writers to catch up (at most ${DRAIN_SECS}s each)"
for g in "${GWS[@]}"; do
    read -r ROWS_FINAL[$g] DRAIN[$g] < <(wait_audit_stable "$WORK/$g")
    echo "  $g: $((ROWS_END[$g] - ROWS0[$g])) rows at the end of the load, $((ROWS_FINAL[$g] - ROWS0[$g])) once caught up (${DRAIN[$g]}s later), for ${REQ_D[$g]} requests" >&2
done

# ------------------------------------------------------------------------------------ summary
J="$WORK/loadgen.jsonl"
tgt() { jq -r --arg t "$1" "select(.kind == \"target\" and .target == \$t) | $2" "$J"; }
round_ratio() {
    jq -rs --arg a "$1" --arg b "$2" \
        'map(select(.kind == "round")) | group_by(.round) | map((map(select(.target == $a))[0].rps) / (map(select(.target == $b))[0].rps)) | .[]' "$J" | median
}
TOTAL_ERRORS=$(jq -s 'map(select(.kind == "target") | .errors) | add' "$J")
# Only enforced Member-State targets may carry (FORBIDDEN_FIELD) errors.
STRAY_ALLOWED=$(jq -s 'map(select(.kind == "target" and ((.target | startswith("un_")) or (.target | endswith("_noenf")))) | .allowed_error_responses) | add' "$J")
if [[ "$TOTAL_ERRORS" == 0 && "$LOADGEN_RC" == 0 && "$STRAY_ALLOWED" == 0 ]]; then
    VALID="valid (0 errors)"
else
    VALID="INVALID: $TOTAL_ERRORS errors, loadgen exit $LOADGEN_RC"
fi
row() { # target label
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" \
        "$(fmt "$(tgt "$1" .rps_median)" 0)" \
        "$(tgt "$1" '.rps_rounds | map(. * 1 | floor) | map(tostring) | join(" / ")')" \
        "$(fmt "$(tgt "$1" .p50_ms)" 2)" "$(fmt "$(tgt "$1" .p99_ms)" 2)" \
        "$(tgt "$1" .requests)" "$(tgt "$1" .errors)" "$(tgt "$1" .mean_response_bytes)"
}
ratio_line() { # a b label
    printf -- '- %s: throughput **%s** (median of per-round ratios), p50 ×%s, p99 ×%s\n' "$3" \
        "$(fmt "$(round_ratio "$1" "$2")" 3)" "$(div "$(tgt "$1" .p50_ms)" "$(tgt "$2" .p50_ms)" 2)" "$(div "$(tgt "$1" .p99_ms)" "$(tgt "$2" .p99_ms)" 2)"
}
audit_line() { # gateway
    local g=$1
    printf -- '- %s: %s requests (all targets on it, warm-ups included); audit rows %s at the end of the load, %s once the writer caught up (%ss later): **%s rows/request**\n' \
        "$g" "${REQ_D[$g]}" "$((ROWS_END[$g] - ROWS0[$g]))" "$((ROWS_FINAL[$g] - ROWS0[$g]))" "${DRAIN[$g]}" \
        "$(div $((ROWS_FINAL[$g] - ROWS0[$g])) "${REQ_D[$g]}" 1)"
}

SUMMARY=$(
    cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $(bench_commit) — nproc $(nproc) — access enforcement

\`scripts/bench-access.sh\` on $(uname -sm), $(rustc --version 2>/dev/null || echo 'rustc ?'). Real UN data, one temp SQLite store per
gateway; gateways: release, no connectors, simulators off, log filter "warn" (no per-request logging); **auditing on**
(\`[access] audit = true\`) unless marked; \`noenf\` = \`cargo build --release --features bench-no-enforcement\` (benchmark-only
feature, enforcement compiled out). Load: $CONCURRENCY connections, $ROUNDS interleaved round(s) of ${WARMUP}s warm-up + ${DURATION}s per
target, load generator on the same machine. Run: **$VALID**.

Query: \`$QUERY\`. Principals: UN analyst (org UN, role un-analyst, totalCount ${CK_TOTAL[un,enf]}); Member-State analysts
(role member-state-analyst), default binary:
$(for p in "${PRINCIPALS[@]}"; do [[ $p == un ]] && continue; echo "- org $(echo "$p" | tr '[:lower:]' '[:upper:]'): sees ${CK_TOTAL[$p,enf]} related cases, ${CK_NODES[$p,enf]} on the page; ${CK_ERRS[$p,enf]} FORBIDDEN_FIELD errors per response${CK_DENIED[$p,enf]:+ (${CK_DENIED[$p,enf]})}; under load $(tgt "${p}_enf" .allowed_error_responses) of $(tgt "${p}_enf" .requests) answers carried them (the only tolerated errors)"; done)
- no-enforcement binary: every principal reads 100 cases of every state with 0 errors (a Member State's page is then a
  different, unscoped set of cases, with $(jq '[.data.cases.nodes[].victims | length] | add' "$WORK/check_un_noenf.json") victims)

| target | req/s (median of rounds) | req/s per round | p50 ms | p99 ms | requests | errors | bytes/resp |
|---|---:|---|---:|---:|---:|---:|---:|
$(for p in "${PRINCIPALS[@]}"; do P=$(echo "$p" | tr '[:lower:]' '[:upper:]'); row "${p}_enf" "$P analyst, enforced"; row "${p}_noenf" "$P analyst, enforcement compiled out"; done)
$(if [[ "$AUDIT_OFF" == 1 ]]; then for p in un "$LAST_MS"; do row "${p}_enf_noaudit" "$(echo "$p" | tr '[:lower:]' '[:upper:]') analyst, enforced, audit OFF"; done; fi)

$(for p in "${PRINCIPALS[@]}"; do ratio_line "${p}_enf" "${p}_noenf" "$(echo "$p" | tr '[:lower:]' '[:upper:]') analyst, enforced / unenforced"; done)
$(if [[ "$AUDIT_OFF" == 1 ]]; then for p in un "$LAST_MS"; do ratio_line "${p}_enf" "${p}_enf_noaudit" "$(echo "$p" | tr '[:lower:]' '[:upper:]') analyst, audit on / off (both enforced)"; done; fi)

Audit rows per request (sequential checks, $CHECKS requests each; enforced / unenforced):
$(for p in "${PRINCIPALS[@]}"; do printf '%s %s / %s; ' "$(echo "$p" | tr '[:lower:]' '[:upper:]')" "${CK_ROWS[$p,enf]}" "${CK_ROWS[$p,noenf]}"; done)$(if [[ "$AUDIT_OFF" == 1 ]]; then echo "audit off: UN ${CK_ROWS[un,enf_noaudit]}, $(echo "$LAST_MS" | tr '[:lower:]' '[:upper:]') ${CK_ROWS[$LAST_MS,enf_noaudit]}."; fi) During the load:
$(for g in "${GWS[@]}"; do audit_line "$g"; done)
- p50/p99 are over all measured requests of all rounds
EOF
)

log "Summary"
echo "$SUMMARY"
append_results "$RESULTS" "$SUMMARY"
[[ "$VALID" == valid* ]] || die "invalid run (see $RESULTS)"
