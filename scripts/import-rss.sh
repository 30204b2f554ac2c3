#!/usr/bin/env bash
# Import one users.csv into a fresh server started from BINARY: the import's time through the
# CLI, the server's peak RSS (VmHWM) and its RSS 3 s after, then the data dir's bytes once the
# server stopped (sled's share named). Run it with two builds, alternated, to compare them in
# the same minutes (district-1m.sh leaves a 1M-row users.csv in its work dir). A benchmark, not
# a test.
# usage: scripts/import-rss.sh BINARY USERS_CSV [PORT]
set -euo pipefail
bin=$1 csv=$2 addr=127.0.0.1:${3:-50093}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$bin" serve --data-dir "$work/data" --listen "$addr" > "$work/out" 2> "$work/err" & spid=$!
for _ in $(seq 150); do grep -q 'al_' "$work/out" "$work/err" 2>/dev/null && break; sleep 0.2; done
export ACCOUNT_LEDGER_SERVER="http://$addr"
export ACCOUNT_LEDGER_TOKEN=$(grep -oh 'al_[A-Za-z0-9_-]*' "$work/out" "$work/err" | head -1)
"$bin" domain create big --limit 100000000 > /dev/null
export ACCOUNT_LEDGER_TOKEN=$("$bin" token add --principal admin --role domain-admin --domain big)
t0=$(date +%s.%N)
"$bin" import --domain big --kind users --confirm-mass-change "$csv" > "$work/import.out" 2>&1
t1=$(date +%s.%N)
echo "$bin: import $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s; server peak RSS $(grep VmHWM /proc/$spid/status | awk '{printf "%d MiB", $2/1024}')"
sleep 3; echo "  RSS 3 s after the import: $(grep VmRSS /proc/$spid/status | awk '{printf "%d MiB", $2/1024}')"
kill -TERM $spid; wait $spid || true
echo "  data dir after the stop: $(du -sb "$work/data" | cut -f1) bytes, of which sled $(du -sb "$work/data/ledger/sled" | cut -f1)"
