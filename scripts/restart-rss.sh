#!/usr/bin/env bash
# Start BINARY on an existing data dir (e.g. the one scripts/district-1m.sh leaves), time it
# until health says SERVING (the probe, a Python gRPC client started every 50 ms, adds up to a
# few tenths) and until the server logs "serving on", with its own "ledger open in" line and
# views phase; print its RSS 2 s later, stop it. Run it with two builds on the same data dir, in
# both orders, to compare them in the same minute. A benchmark, not a test.
# usage: scripts/restart-rss.sh BINARY DATA_DIR [PORT]
set -euo pipefail
bin=$1 data=$2 addr=127.0.0.1:${3:-50092}
tools="$(cd "$(dirname "$0")/tools" && pwd)"
log=$(mktemp); trap 'rm -f "$log"' EXIT
t0=$(date +%s.%N)
"$bin" serve --data-dir "$data" --listen "$addr" > /dev/null 2> "$log" & spid=$!
until grep -q "serving on" "$log"; do
  kill -0 $spid 2>/dev/null || { echo "the server stopped:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.02
done
t1=$(date +%s.%N)
# The port is open by now (the server listens once the ledger is open), so the probe's first
# connection is not refused (a refused gRPC channel backs off for a second).
until "$("$tools/venv.sh")/bin/python" "$tools/grpc_probe.py" "$addr" > /dev/null 2>&1; do sleep 0.05; done
t2=$(date +%s.%N)
sleep 2
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
phases=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'views loaded in [0-9.]*[mµ]*s (rows read and opened in [0-9.]*[mµ]*s\|ledger open in [0-9.]*[mµ]*s' | tr '\n' ';')
echo "$(basename "$bin"): until 'serving on' $(secs "$t0" "$t1") s, until SERVING (probe) $(secs "$t0" "$t2") s; ${phases} RSS $(grep VmRSS /proc/$spid/status | awk '{print int($2/1024)}') MiB, peak $(grep VmHWM /proc/$spid/status | awk '{print int($2/1024)}') MiB"
kill -TERM $spid; wait $spid || true
