# Shared helpers of scripts/bench-connectors.sh and scripts/bench-access.sh (sourced, not run).
#
# The sourcing script sets ROOT, WORK and BENCH_NAME and calls `bench_init`, which installs the
# EXIT trap that kills every process started through `track` and removes $WORK (unless
# BENCH_KEEP=1). Everything listens on 127.0.0.1 only; every wait loop is bounded.

PIDS=()

bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        echo "$BENCH_NAME: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}

bench_init() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# track PID: kill it on exit.
track() { PIDS+=("$1"); }

log() { printf '\n== %s\n' "$*" >&2; }
die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
now() { date +%s.%N; }
# Median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { if (v == "" || v == "null" || v == "nan") print "n/a"; else printf "%.*f", d, v }'; }
div() { awk -v a="$1" -v b="$2" -v d="${3:-3}" 'BEGIN { if (b == 0) print "nan"; else printf "%.*f", d, a / b }'; }

require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
}

# set_key FILE SECTION KEY VALUE: replaces `KEY = …` inside `[SECTION]` of a TOML file with
# `KEY = VALUE` (VALUE is raw TOML); fails unless exactly one line matched.
set_key() {
    local file=$1 section=$2 key=$3 value=$4
    awk -v sec="$section" -v key="$key" -v val="$value" '
        /^\[/ { cur = $0; sub(/^\[/, "", cur); sub(/\].*$/, "", cur) }
        cur == sec && $0 ~ ("^" key "[ \t]*=") { print key " = " val; n++; next }
        { print }
        END { if (n != 1) exit 3 }
    ' "$file" >"$file.tmp" || { rm -f "$file.tmp"; die "config/casegraph.toml changed shape: no single [$section] $key"; }
    mv "$file.tmp" "$file"
}

# make_gateway_config DIR CONNECTORS_DIR: a copy of config/casegraph.toml in DIR with its SQLite
# store in DIR, the shared dev key in $WORK, no import on start, log filter "warn" (no per-request
# logging on the hot path), the demo simulators off and connectors from CONNECTORS_DIR ("" for
# none). Extra TOML can be appended by the caller before check_gateway_config.
make_gateway_config() {
    local dir=$1 conn=$2 cfg
    mkdir -p "$dir"
    cfg="$dir/casegraph.toml"
    cp config/casegraph.toml "$cfg"
    set_key "$cfg" store url "\"sqlite://$dir/casegraph.db\""
    set_key "$cfg" store import_bundled_data_when_empty false
    set_key "$cfg" auth.dev_issuer key_file "\"$WORK/dev-issuer-key.pem\""
    set_key "$cfg" log filter '"warn"'
    set_key "$cfg" connectors dir "\"$conn\""
    set_key "$cfg" simulators enabled false
}

check_gateway_config() { "$1" check-config --config "$2/casegraph.toml" >"$2/check-config.out" 2>&1 || { cat "$2/check-config.out" >&2; die "invalid config in $2"; }; }

# import_real_data BIN DIR: the bundled UN missions and fatalities into DIR's store (CLI import,
# as scripts/bench.sh does).
import_real_data() {
    local bin=$1 dir=$2
    "$bin" import missions --config "$dir/casegraph.toml" data/un/DPPADPOSS-PKO.csv >"$dir/missions.out" 2>"$dir/missions.err" ||
        { cat "$dir/missions.err" >&2; die "importing the missions into $dir failed"; }
    "$bin" import fatalities --config "$dir/casegraph.toml" data/un/DPPADPOSS-FATALITIES.csv >"$dir/fatalities.out" 2>"$dir/fatalities.err" ||
        { cat "$dir/fatalities.err" >&2; die "importing the fatalities into $dir failed"; }
}

# start_gateway BIN DIR VAR: `BIN serve` on 127.0.0.1 (free port); sets VAR to its address once
# it listens (at most 60 s).
start_gateway() {
    local bin=$1 dir=$2 var=$3 pid addr=""
    "$bin" serve --config "$dir/casegraph.toml" --listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.log" &
    pid=$!
    track "$pid"
    echo "$pid" >"$dir/serve.pid"
    for _ in $(seq 1 600); do
        addr=$(sed -n 's|.*listening on http://\(127\.0\.0\.1:[0-9]*\).*|\1|p' "$dir/serve.log" | head -n 1)
        [[ -n "$addr" ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.log" >&2; die "the gateway on $dir exited"; }
        sleep 0.1
    done
    [[ -n "$addr" ]] || die "the gateway on $dir did not start listening within 60 s"
    curl -fsS --max-time 10 "http://$addr/health/ready" >/dev/null || die "the gateway at $addr is not ready"
    printf -v "$var" '%s' "$addr"
}

# gateway_requests ADDR: GraphQL requests the gateway has answered (its /metrics counter).
gateway_requests() {
    curl -fsS --max-time 10 "http://$1/metrics" | awk '$1 == "casegraph_graphql_request_duration_seconds_count" { print $2; found = 1 } END { if (!found) print "nan" }'
}

bench_commit() {
    local c
    c=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -n "$(git status --porcelain 2>/dev/null)" ]] && c="$c (working tree has uncommitted changes)"
    echo "$c"
}

# append_results FILE SUMMARY
append_results() {
    local results=$1 summary=$2
    mkdir -p "$(dirname "$results")"
    if [[ ! -s "$results" ]]; then
        printf '# CaseGraph benchmark results\n\nAppended by the scripts in `scripts/` (one block per run). Compare ratios measured in the same run;\nabsolute figures depend on the machine and its load.\n' >"$results"
    fi
    printf '\n%s\n' "$summary" >>"$results"
    echo "$BENCH_NAME: appended to $results" >&2
}
