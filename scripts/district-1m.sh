#!/usr/bin/env bash
# One district of N accounts (default 1M) through the CLI, as an operator would: a users.csv of
# N new accounts imported over gRPC, the server's RSS (peak and after), then a restart timed until
# health says SERVING (grpc_probe.py), the RSS after restart, the daily queries timed over gRPC
# (`account-ledger reads-bench`, after the import and after the restart), and a streamed export
# of every row (JSON lines, then the re-importable CSV), then a list as of an instant before a
# change of every account.
# A benchmark, not a test.
# usage: scripts/district-1m.sh BINARY WORKDIR [ROWS] [PORT]
set -euo pipefail
bin=$1 work=$2 rows=${3:-1000000} port=${4:-50091}
tools="$(cd "$(dirname "$0")/tools" && pwd)"; venv=$("$tools/venv.sh")
rm -rf "$work"; mkdir -p "$work"; addr=127.0.0.1:$port
export ACCOUNT_LEDGER_SERVER="http://$addr"
python3 - "$work/users.csv" "$rows" <<'PY'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    f.write("import_id,first_name,last_name,login,password,email,user_type,enabled\n")
    for i in range(n):
        f.write(f"U{i:07d},First{i},Last{i},user{i:07d},pw{i},user{i:07d}@district.example,student,1\n")
PY
rss() { grep -E 'VmHWM|VmRSS' /proc/$1/status | awk '{printf "%s %d MiB  ", $1, $2/1024}'; }
start() {
  # The time until SERVING is taken by a client already running (health_wait.py: grpc
  # imported before the server starts, the port polled every 10 ms), so it is the server's
  # alone; the stock probe (grpc_probe.py, health and reflection) then checks the server
  # as outside tools see it.
  "$venv/bin/python" "$tools/health_wait.py" "$addr" > "$work/wait.out" & wpid=$!
  until grep -q ready "$work/wait.out" 2>/dev/null; do sleep 0.01; done
  t0=$(date +%s.%N)
  "$bin" serve --data-dir "$work/data" --listen "$addr" > "$work/serve.out" 2> "$work/serve.err" & spid=$!
  wait $wpid || { echo "the server never said SERVING:" >&2; cat "$work/serve.err" >&2; exit 1; }
  t1=$(date +%s.%N); echo "until SERVING: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
  "$venv/bin/python" "$tools/grpc_probe.py" "$addr" > /dev/null || { echo "the probe failed" >&2; exit 1; }
}
start
export ACCOUNT_LEDGER_TOKEN=$(grep -o 'al_[A-Za-z0-9_-]*' "$work/serve.out" "$work/serve.err" | head -1 | cut -d: -f2)
"$bin" domain create big --limit 2000000 > /dev/null
export ACCOUNT_LEDGER_TOKEN=$("$bin" token add --principal admin --role domain-admin --domain big)
# Kept for later runs on this data dir (e.g. reads-bench after scripts/restart-rss.sh).
(umask 077; echo "$ACCOUNT_LEDGER_TOKEN" > "$work/admin.token")
t0=$(date +%s.%N)
"$bin" import --domain big --kind users --confirm-mass-change "$work/users.csv" > "$work/import.out" 2>&1
t1=$(date +%s.%N)
echo "import of $rows new accounts (CLI over gRPC): $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s; $(grep -E 'status' "$work/import.out")"
echo "RSS after import: $(rss $spid)"
sleep 3; echo "RSS 3 s later: $(rss $spid)"
"$bin" reads-bench big --runs 20 --changes 1000
echo "RSS after the queries: $(rss $spid)"
kill -TERM $spid; wait $spid || true
echo "data dir: $(du -sb "$work/data" | cut -f1) bytes"
start
echo "RSS after restart: $(rss $spid)"
"$bin" reads-bench big --runs 20 --changes 1000
echo "RSS after the queries: $(rss $spid)"
sleep 5; echo "RSS 5 s later: $(rss $spid)"
# ExportUsers streamed to the CLI (JSON lines); the server's peak RSS above its RSS before.
echo 5 > /proc/$spid/clear_refs; idle=$(grep VmRSS /proc/$spid/status | awk '{print $2}')
t0=$(date +%s.%N); n=$("$bin" export big --json | wc -l); t1=$(date +%s.%N)
peak=$(grep VmHWM /proc/$spid/status | awk '{print $2}')
echo "export of $n rows (CLI --json): $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s; server peak RSS above idle: $(( (peak - idle) / 1024 )) MiB"
# An old instant after which every account changed: the file again with every account
# disabled, then the first page as of before it (every account folded up to then).
before=$(date -u +%Y-%m-%dT%H:%M:%SZ); sleep 1.1
sed 's/,1$/,0/' "$work/users.csv" > "$work/users-disabled.csv"
"$bin" import --domain big --kind users --confirm-mass-change "$work/users-disabled.csv" > "$work/import2.out" 2>&1
echo 5 > /proc/$spid/clear_refs; idle=$(grep VmRSS /proc/$spid/status | awk '{print $2}')
for i in 1 2 3; do
  t0=$(date +%s.%N); "$bin" account list big --as-of "$before" --limit 100 > "$work/asof.out"; t1=$(date +%s.%N)
  echo "ListAccounts, first page as of before a change of every account: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s ($(tail -2 "$work/asof.out" | head -1))"
done
peak=$(grep VmHWM /proc/$spid/status | awk '{print $2}')
echo "server peak RSS above idle during those lists: $(( (peak - idle) / 1024 )) MiB"
kill -TERM $spid; wait $spid || true
