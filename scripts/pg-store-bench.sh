#!/usr/bin/env bash
# The service on PostgreSQL (`serve --store`) next to the service on sled and PostgreSQL's own
# pgbench, same box, same minutes: durable single commands over gRPC (RecordSignIn via h2load,
# 64 connections and 1) and a 100k-row users.csv import through the CLI; then three servers over
# one schema, each deciding one of three domains, loaded at once (64 connections in all). Each
# load is followed by the servers' own count of durable appends (--metrics-listen): how many,
# events in each, time each took. A benchmark, not a test.
# usage: scripts/pg-store-bench.sh BINARY WORKDIR [CONNINFO]
set -euo pipefail
bin=$1 work=$2 conninfo=${3:-host=127.0.0.1 user=postgres dbname=test}
tools="$(cd "$(dirname "$0")/tools" && pwd)"
rm -rf "$work"; mkdir -p "$work"; chmod 755 "$work"
schema="al_bench_$$"
python3 - "$work/users.csv" 100000 <<'PY'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    f.write("import_id,first_name,last_name,login,password,email,user_type,enabled\n")
    for i in range(n):
        f.write(f"U{i:07d},First{i},Last{i},user{i:07d},pw{i},user{i:07d}@district.example,student,1\n")
PY
# pgbench runs as postgres: its script goes where that user can read it (WORKDIR's parent may
# be a private mktemp dir).
pub=$(mktemp -d /tmp/pg-store-bench.XXXXXX); chmod 755 "$pub"; trap 'rm -rf "$pub"' EXIT
printf '\\set s random(1, 100000)\ninsert into ev(stream, payload) values (:s, repeat(%s, 220));\n' "'x'" > "$pub/ins.sql"
chmod 644 "$pub/ins.sql"
su postgres -c "psql -qc 'drop database if exists al_pgbench'" && su postgres -c "psql -qc 'create database al_pgbench'"
su postgres -c "psql -q al_pgbench -c 'create table ev(pos bigserial primary key, stream bigint not null, payload text not null)'"
echo "pgbench single-row inserts, 64 clients: $(su postgres -c "pgbench -n -c 64 -j 2 -T 10 -f $pub/ins.sql al_pgbench" 2>&1 | grep -E '^tps' | tr '\n' ' ')"
echo "pgbench single-row inserts, 1 client:   $(su postgres -c "pgbench -n -c 1 -j 1 -T 5 -f $pub/ins.sql al_pgbench" 2>&1 | grep -E '^tps' | tr '\n' ' ')"
su postgres -c "psql -qc 'drop database al_pgbench'"
# The server's own counters (--metrics-listen): durable appends so far, their events and seconds.
appends() { curl -s "127.0.0.1:$1/metrics" | awk '/^account_ledger_group_commit_events_count/ {c=$2}
  /^account_ledger_group_commit_events_sum/ {e=$2} /^account_ledger_append_seconds_sum/ {s=$2} END {print c+0, e+0, s+0}'; }
# Appends between two readings of `appends`: how many, events in each, time each took.
appends_since() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); c = y[1] - x[1]
  if (c > 0) printf "%d appends, %.1f events each, %.2f ms each", c, (y[2] - x[2]) / c, (y[3] - x[3]) * 1000 / c}'; }
run() { # run NAME PORT [serve args...]
  local name=$1 port=$2; shift 2
  local addr=127.0.0.1:$port data="$work/data-$name"
  "$bin" serve --data-dir "$data" --listen "$addr" --metrics-listen "127.0.0.1:$((port + 100))" "$@" \
    > "$work/$name.out" 2> "$work/$name.err" & local spid=$!
  until "$("$tools/venv.sh")/bin/python" "$tools/grpc_probe.py" "$addr" > /dev/null 2>&1; do sleep 0.1; done
  export ACCOUNT_LEDGER_SERVER="http://$addr"
  export ACCOUNT_LEDGER_TOKEN=$(grep -o 'ACCOUNT_LEDGER_TOKEN=.*' "$work/$name.out" | head -1 | cut -d= -f2)
  "$bin" domain create perf --limit 200000 > /dev/null
  local lms; lms=$("$bin" token add --principal lms --role lms)
  export ACCOUNT_LEDGER_TOKEN=$("$bin" token add --principal admin --role domain-admin --domain perf)
  "$bin" account create --domain perf --login u1 --import-id S1 > /dev/null
  local before; before=$(appends $((port + 100)))
  echo "$name RecordSignIn 64 conns: $("$tools/grpc-load.sh" "$addr" RecordSignIn '{"account":{"id":1}}' "$lms" 20000 64 1 | grep -E 'finished|time for request|latency' | tr -s ' ' | tr '\n' ' ')"
  echo "  $(appends_since "$before" "$(appends $((port + 100)))")"
  echo "$name RecordSignIn 1 conn:   $("$tools/grpc-load.sh" "$addr" RecordSignIn '{"account":{"id":1}}' "$lms" 3000 1 1 | grep -E 'finished|time for request|latency' | tr -s ' ' | tr '\n' ' ')"
  local t0 t1; t0=$(date +%s.%N)
  "$bin" import --domain perf --kind update-users "$work/users.csv" > "$work/$name.import" 2>&1
  t1=$(date +%s.%N)
  echo "$name import of 100k new accounts (CLI): $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s; $(grep -E '^status' "$work/$name.import")"
  kill -TERM $spid; wait $spid || true
}
three() { # three servers over one schema, one domain decided by each, load on all at once
  local schema3="${schema}_3" pids=() i
  for i in 1 2 3; do
    "$bin" serve --data-dir "$work/data-3-$i" --listen "127.0.0.1:5009$((6 + i))" \
      --metrics-listen "127.0.0.1:5019$((6 + i))" --store "$conninfo" --store-schema "$schema3" > "$work/three-$i.out" 2> "$work/three-$i.err" & pids+=($!)
    until "$("$tools/venv.sh")/bin/python" "$tools/grpc_probe.py" "127.0.0.1:5009$((6 + i))" > /dev/null 2>&1; do sleep 0.1; done
  done
  local op; op=$(grep -ho 'ACCOUNT_LEDGER_TOKEN=.*' "$work"/three-*.out | head -1 | cut -d= -f2)
  local lms; lms=$(ACCOUNT_LEDGER_SERVER=http://127.0.0.1:50097 ACCOUNT_LEDGER_TOKEN=$op "$bin" token add --principal lms --role lms)
  for i in 1 2 3; do
    export ACCOUNT_LEDGER_SERVER="http://127.0.0.1:5009$((6 + i))" ACCOUNT_LEDGER_TOKEN=$op
    "$bin" domain create "perf$i" --limit 200000 > /dev/null   # decided by server i from now on
    ACCOUNT_LEDGER_TOKEN=$("$bin" token add --principal "admin$i" --role domain-admin --domain "perf$i") \
      "$bin" account create --domain "perf$i" --login u1 --import-id S1 > "$work/three-acc-$i"
  done
  local t0 t1 lp=() before=(); for i in 1 2 3; do before+=("$(appends "5019$((6 + i))")"); done
  t0=$(date +%s.%N)
  for i in 1 2 3; do
    local id; id=$(grep -o 'account [0-9]*' "$work/three-acc-$i" | head -1 | cut -d' ' -f2)
    "$tools/grpc-load.sh" "127.0.0.1:5009$((6 + i))" RecordSignIn "{\"account\":{\"id\":$id}}" "$lms" 10000 21 1 > "$work/three-load-$i" 2>&1 & lp+=($!)
  done
  wait "${lp[@]}"
  t1=$(date +%s.%N)
  echo "three servers RecordSignIn, 3 x 21 conns, 30000 requests: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f req/s overall (%.2f s)", 30000/(b-a), b-a}')"
  for i in 1 2 3; do echo "  server $i: $(grep -E 'finished|succeeded|latency' "$work/three-load-$i" | tr -s ' ' | tr '\n' ' ')"; done
  for i in 1 2 3; do echo "  server $i: $(appends_since "${before[$((i - 1))]}" "$(appends "5019$((6 + i))")")"; done
  # Read lag: an account created through server 1, polled on server 2 until it is there.
  local admin1; admin1=$(ACCOUNT_LEDGER_SERVER=http://127.0.0.1:50097 ACCOUNT_LEDGER_TOKEN=$op "$bin" token add --principal lag --role domain-admin --domain perf1)
  "$("$tools/venv.sh")/bin/python" - "$tools" "$admin1" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1])
from dynclient import DynClient
a, b = DynClient("127.0.0.1:50097", sys.argv[2]), DynClient("127.0.0.1:50098", sys.argv[2])
lags = []
for i in range(200):
    iid = f"LAG{i}"
    a.call("CreateAccount", {"domain": "perf1", "import_id": iid, "profile": {"login": f"lag{i}"}, "role": "student"})
    t0 = time.perf_counter()
    while True:
        # ListAccounts reads this server's read model only (no catch-up on a miss).
        page = b.call("ListAccounts", {"domain": "perf1", "search": f"lag{i}", "include_disabled": True})
        if page.get("accounts"):
            break
        time.sleep(0.0005)
    lags.append((time.perf_counter() - t0) * 1000)
lags.sort()
print(f"read lag, created on server 1 until listed on server 2 (200 accounts): median {lags[100]:.1f} ms, p99 {lags[197]:.1f} ms, max {lags[-1]:.1f} ms")
PY
  kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
  psql "$conninfo" -qc "drop schema $schema3 cascade" > /dev/null 2>&1 || true
}
run sled 50095
run postgres 50096 --store "$conninfo" --store-schema "$schema"
psql "$conninfo" -qc "drop schema $schema cascade" > /dev/null 2>&1 || true
three
