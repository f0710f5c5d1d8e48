#!/usr/bin/env bash
# Runs the benchmark scenarios against linechatd, ngircd and InspIRCd on loopback, in one go on
# this machine, and prints one table of medians (docs/performance.md explains every column).
# F1, F2 and L1 run round-robin (a run on each server, RUNS times), so that the machine's
# drift hits every server alike.
#
#   bench/peers.sh                 # everything (about 20 minutes on 2 cores)
#   RUNS=5 bench/peers.sh f1 l1    # chosen scenarios, more runs each
#   I1_PEERS=0 bench/peers.sh i1   # i1 for linechatd only (ngircd registers 10,000 clients slowly)
#   BEFORE=/tmp/old/linechatd bench/peers.sh f1 l1   # also an older linechatd, as "linechatd-before",
#                                  # in the same round-robin (before/after figures from one run)
#   TLS=0 bench/peers.sh f1 l1     # without the TLS runs (F1 and L1 run over linechatd's TLS port
#                                  # too, as "linechatd-tls", by default)
#   CLUSTER=0 bench/peers.sh f1 l1 # without the cluster runs (F1 and L1 also run on two linechatd
#                                  # nodes sharing the room through one JetStream nats-server, the
#                                  # clients spread over both, as "linechatd-cluster", by default;
#                                  # CPU is then both nodes' and nats-server's)
#   METRICS=0 bench/peers.sh f1 l1 # without the metrics runs (F1 and L1 also run on linechatd
#                                  # with --metrics-listen, /metrics scraped every second, as
#                                  # "linechatd-metrics", by default)
#   PEERS=0 RUNS=11 bench/peers.sh f1 l1   # linechatd's variants only: many paired rounds
#                                  # for an A/B of a few percent
#
# Installs ngircd and inspircd from Debian's packages if they are missing. Every server starts
# fresh for each scenario, with persistence on for linechatd (SQLite, --sync normal) and only its
# message rate limit, per-address limit and registration limits lifted (--rate-per-sec 0
# --max-per-ip 0 --register-per-ip-per-hour 0 --register-per-hour 0 --max-guests-per-ip 0).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
I1_PEERS=${I1_PEERS:-1}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(store f1 f2 l1 a1 h1 h2 h3 i1)

TLS=${TLS:-1}
CLUSTER=${CLUSTER:-1}
METRICS=${METRICS:-1}
PEERS=${PEERS:-1}
[ "$CLUSTER" != 1 ] || scripts/install-nats-server.sh
if ! command -v ngircd >/dev/null || ! command -v inspircd >/dev/null || ! command -v openssl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngircd inspircd openssl >/dev/null
fi
# The packages may start system instances on the default ports; ours use their own ports.
pkill -x ngircd 2>/dev/null || true
pkill -x inspircd 2>/dev/null || true

cargo build --release --quiet --workspace --bin linechatd --bin linechat-bench
BENCH=target/release/linechat-bench
DAEMON=target/release/linechatd
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/linechat-bench.XXXXXX)
RESULTS="$WORK/results.txt"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
PORT_LC=7990
PORT_TLS=7991
# A self-signed certificate for the TLS runs (the load generator verifies it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
TLS_FLAGS=(--tls-listen 127.0.0.1:$PORT_TLS --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
PORT_LC2=7992   # the cluster's second node
PORT_NATS=7993
PORT_METRICS=7994
PORT_NG=6670    # as in bench/ngircd.conf
PORT_IN=6671    # as in bench/inspircd.conf

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listening on port $1" >&2
    return 1
}

SERVER_PID=
start_linechatd() { # extra flags...
    local db="$WORK/lc-$RANDOM.db"
    # The scenarios register thousands of accounts from one address: lift the registration
    # limits (an older linechatd, BEFORE, had none and does not know the flags).
    local lift=(--register-per-ip-per-hour 0 --register-per-hour 0 --max-guests-per-ip 0)
    [ -z "${LINECHATD:-}" ] || lift=()
    RUST_LOG=warn "${LINECHATD:-$DAEMON}" --listen 127.0.0.1:$PORT_LC --db "$db" --rate-per-sec 0 \
        --max-per-ip 0 --max-connections 20000 "${lift[@]}" "$@" 2>>"$WORK/linechatd.log" &
    SERVER_PID=$!
    wait_port $PORT_LC
}
# Two linechatd nodes and the JetStream server they share, all fresh; SERVER_PID is the first
# node, ALSO_PIDS the second node and nats-server.
ALSO_PIDS=()
start_cluster() {
    rm -rf "$WORK/nats"
    .tools/nats/bin/nats-server -js -a 127.0.0.1 -p $PORT_NATS -sd "$WORK/nats" >>"$WORK/nats.log" 2>&1 &
    local nats=$!
    wait_port $PORT_NATS
    start_linechatd --bcrypt-cost 4 --cluster nats://127.0.0.1:$PORT_NATS --node a
    local first=$SERVER_PID
    PORT_LC=$PORT_LC2 start_linechatd --bcrypt-cost 4 --cluster nats://127.0.0.1:$PORT_NATS --node b
    ALSO_PIDS=("$SERVER_PID" "$nats")
    SERVER_PID=$first
}
start_ngircd() {
    ngircd -n -f bench/ngircd.conf >>"$WORK/ngircd.log" 2>&1 &
    SERVER_PID=$!
    wait_port $PORT_NG
}
start_inspircd() {
    mkdir -p "$WORK/inspircd"
    cp bench/inspircd.conf "$WORK/inspircd/"
    (cd "$WORK/inspircd" && exec inspircd --nofork --runasroot --config="$WORK/inspircd/inspircd.conf") \
        >>"$WORK/inspircd.log" 2>&1 &
    SERVER_PID=$!
    wait_port $PORT_IN
    # inspircd's own pid (the subshell exec'd it, so $! is it)
}
# Scrapes linechatd's /metrics every second, as Prometheus would (bash's own TCP: no client
# to install), until stop_server.
start_scraper() {
    wait_port $PORT_METRICS
    (
        while sleep 1; do
            { exec 3<>/dev/tcp/127.0.0.1/$PORT_METRICS \
                && printf 'GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' >&3 \
                && cat <&3 >/dev/null; } 2>/dev/null || true
            exec 3<&- 2>/dev/null || true
        done
    ) &
    SCRAPER_PID=$!
}
SCRAPER_PID=

stop_server() {
    if [ -n "$SCRAPER_PID" ]; then
        kill "$SCRAPER_PID" 2>/dev/null || true
        wait "$SCRAPER_PID" 2>/dev/null || true
        SCRAPER_PID=
    fi
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    # A cluster's second node, then its nats-server.
    for p in "${ALSO_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ALSO_PIDS=()
}

# run NAME SCENARIO [bench flags...] against all three servers
run_all() {
    local scenario=$1
    shift
    local servers=(linechatd ngircd inspircd)
    [ "$PEERS" = 1 ] || servers=(linechatd)
    [ -z "${BEFORE:-}" ] || servers=(linechatd-before "${servers[@]}")
    if [ "$TLS" = 1 ] && { [ "$scenario" = f1 ] || [ "$scenario" = l1 ]; }; then
        servers=(linechatd-tls "${servers[@]}")
    fi
    if [ "$CLUSTER" = 1 ] && { [ "$scenario" = f1 ] || [ "$scenario" = l1 ]; }; then
        servers=(linechatd-cluster "${servers[@]}")
    fi
    if [ "$METRICS" = 1 ] && { [ "$scenario" = f1 ] || [ "$scenario" = l1 ]; }; then
        servers=(linechatd-metrics "${servers[@]}")
    fi
    for server in "${servers[@]}"; do
        local tls=() addr also=()
        case $server in
            linechatd) start_linechatd --bcrypt-cost 4; proto=linechat; port=$PORT_LC ;;
            linechatd-tls)
                start_linechatd --bcrypt-cost 4 "${TLS_FLAGS[@]}"; wait_port $PORT_TLS
                proto=linechat; port=$PORT_TLS; tls=(--tls --tls-ca "$WORK/cert.pem") ;;
            linechatd-before) LINECHATD=$BEFORE start_linechatd --bcrypt-cost 4; proto=linechat; port=$PORT_LC ;;
            linechatd-cluster) start_cluster; proto=linechat; port=$PORT_LC ;;
            linechatd-metrics)
                start_linechatd --bcrypt-cost 4 --metrics-listen 127.0.0.1:$PORT_METRICS
                start_scraper; proto=linechat; port=$PORT_LC ;;
            ngircd) start_ngircd; proto=irc; port=$PORT_NG ;;
            inspircd) start_inspircd; proto=irc; port=$PORT_IN ;;
        esac
        if [ "$scenario" = i1 ] && [ "${server%-before}" != linechatd ] && [ "$I1_PEERS" != 1 ]; then
            stop_server
            continue
        fi
        addr=127.0.0.1:$port
        if [ "$server" = linechatd-cluster ]; then
            addr=127.0.0.1:$PORT_LC,127.0.0.1:$PORT_LC2
            for p in "${ALSO_PIDS[@]}"; do also+=(--also-pid "$p"); done
        fi
        echo "== $scenario on $server" >&2
        "$BENCH" --proto $proto --addr "$addr" --scenario "$scenario" --pid "$SERVER_PID" \
            --label "$server" "${tls[@]}" "${also[@]}" "$@" | tee -a "$WORK/raw.txt" | grep '^RESULT' >>"$RESULTS" || true
        stop_server
    done
}

for s in "${SCENARIOS[@]}"; do
    case $s in
        f1 | f2 | l1)
            # Round-robin, one run per server per round: the machine's drift over the minutes a
            # scenario takes hits every server alike (medians are taken below).
            for k in $(seq "$RUNS"); do
                run_all "$s" --runs 1
            done
            ;;
        i1) run_all i1 ;;
        a1)
            # linechatd only (the peers have no passwords): L1 alone, then L1 with 50 logins at
            # the default bcrypt cost, against the same daemon configuration.
            for mode in l1 a1; do  # L1 alone, then L1 with the storm
                start_linechatd
                echo "== $mode (default bcrypt cost) on linechatd" >&2
                "$BENCH" --addr 127.0.0.1:$PORT_LC --scenario $mode --pid "$SERVER_PID" \
                    --runs "$RUNS" --label "linechatd-cost12" | tee -a "$WORK/raw.txt" \
                    | grep -E '^(RESULT|login storm)' >>"$RESULTS" || true
                stop_server
            done
            ;;
        h1)
            for n in 10000 1000000; do
                db="$WORK/h1-$n.db"
                "$BENCH" --scenario h1 --db "$db" --fill $n >&2
                RUST_LOG=warn "$DAEMON" --listen 127.0.0.1:$PORT_LC --db "$db" --bcrypt-cost 4 \
                    --rate-per-sec 0 2>>"$WORK/linechatd.log" &
                SERVER_PID=$!
                wait_port $PORT_LC
                echo "== h1 on $n messages" >&2
                "$BENCH" --addr 127.0.0.1:$PORT_LC --scenario h1 --fill $n --label "linechatd" \
                    | grep '^RESULT' >>"$RESULTS" || true
                stop_server
            done
            ;;
        h2)
            # linechatd only: #search over 1M indexed messages (the H1 database), then L1 on
            # that daemon alone and L1 with a search storm beside it (4 clients searching
            # without pause), RUNS times round-robin.
            db="$WORK/h2.db"
            "$BENCH" --scenario h2 --db "$db" --fill 1000000 >&2
            start_h2() {
                RUST_LOG=warn "$DAEMON" --listen 127.0.0.1:$PORT_LC --db "$db" --bcrypt-cost 4 \
                    --rate-per-sec 0 --max-per-ip 0 --register-per-ip-per-hour 0 \
                    --register-per-hour 0 --max-guests-per-ip 0 2>>"$WORK/linechatd.log" &
                SERVER_PID=$!
                wait_port $PORT_LC
            }
            start_h2
            echo "== h2 on 1000000 messages" >&2
            "$BENCH" --addr 127.0.0.1:$PORT_LC --scenario h2 --fill 1000000 --label linechatd \
                | grep '^RESULT' >>"$RESULTS" || true
            stop_server
            for k in $(seq "$RUNS"); do
                for mode in l1 h2s; do
                    start_h2
                    echo "== $mode on the h2 database" >&2
                    "$BENCH" --addr 127.0.0.1:$PORT_LC --scenario $mode --pid "$SERVER_PID" \
                        --runs 1 --label "linechatd-h2db" | tee -a "$WORK/raw.txt" \
                        | grep -E '^(RESULT|search storm)' >>"$RESULTS" || true
                    stop_server
                done
            done
            ;;
        h3)
            # linechatd only: #my_messages for a user of 20,000 rooms, empty and with 3 each.
            for per in 0 3; do
                db="$WORK/h3-$per.db"
                "$BENCH" --scenario h3 --db "$db" --fill $per >&2
                RUST_LOG=warn "$DAEMON" --listen 127.0.0.1:$PORT_LC --db "$db" --bcrypt-cost 4 \
                    --rate-per-sec 0 2>>"$WORK/linechatd.log" &
                SERVER_PID=$!
                wait_port $PORT_LC
                echo "== h3, 20000 rooms of $per messages" >&2
                "$BENCH" --addr 127.0.0.1:$PORT_LC --scenario h3 --fill $per --pid "$SERVER_PID" \
                    --label "linechatd-${per}each" | grep '^RESULT' >>"$RESULTS" || true
                stop_server
            done
            ;;
        store)
            for k in $(seq "$RUNS"); do
                "$BENCH" --scenario store --messages 100000 --label "run$k" | grep '^RESULT' >>"$RESULTS" || true
            done
            ;;
        *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done

# One line per server and scenario: the median of each numeric field over its lines (the
# round-robin runs; the other scenarios have one line each, already a median of their runs).
medians() {
    awk '
    function median(list,    v, n, i, j, t) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    !/=/ { order[++keys] = $0; nf[$0] = 0; next }   # a note such as "login storm: ..."
    {
        # Lines that differ in a text field (store: sync=normal, sync=full) are kept apart.
        key = $1 " " $2
        for (i = 3; i <= NF; i++) if ($i !~ /=-?[0-9.]+$/) key = key " " $i
        if (!(key in nf)) { order[++keys] = key; nf[key] = NF; head[key] = $1 " " $2 }
        for (i = 3; i <= NF; i++) {
            eq = index($i, "=")
            f = substr($i, 1, eq - 1); x = substr($i, eq + 1)
            name[key, i] = f
            if (x ~ /^-?[0-9.]+$/) vals[key, i] = vals[key, i] " " x; else text[key, i] = x
        }
    }
    END {
        for (k = 1; k <= keys; k++) {
            key = order[k]; line = (nf[key] ? head[key] : key)
            for (i = 3; i <= nf[key]; i++)
                line = line " " name[key, i] "=" (((key, i) in vals) ? median(vals[key, i]) : text[key, i])
            print line
        }
    }' "$1"
}

echo
echo "Results ($RUNS runs each where it applies; medians; raw output in $WORK/raw.txt)"
echo
sed 's/^RESULT //' "$RESULTS" >"$WORK/lines.txt"
medians "$WORK/lines.txt" | column -t
