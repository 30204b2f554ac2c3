#!/usr/bin/env bash
# Start BINARY on an existing data dir (e.g. the one scripts/district-1m.sh leaves), time it
# until the server logs "serving on" and until health says SERVING (to a client started
# before the server, so that its own start-up is not counted), with the server's phase lines
# (store opened, views loaded, ledger open, list and search index built); print its RSS 2 s later, stop it. Run it with two builds on the same data dir, in
# both orders, to compare them in the same minute. A benchmark, not a test.
# usage: scripts/restart-rss.sh BINARY DATA_DIR [PORT]
set -euo pipefail
bin=$1 data=$2 addr=127.0.0.1:${3:-50092}
tools="$(cd "$(dirname "$0")/tools" && pwd)"
venv=$("$tools/venv.sh")
log=$(mktemp) waited=$(mktemp); trap 'rm -f "$log" "$waited"' EXIT
# A client already running (health_wait.py: grpc imported, the port polled every 10 ms)
# times SERVING, so the figure is the server's alone.
"$venv/bin/python" "$tools/health_wait.py" "$addr" > "$waited" & wpid=$!
until grep -q ready "$waited"; do sleep 0.01; done
t0=$(date +%s.%N)
"$bin" serve --data-dir "$data" --listen "$addr" > /dev/null 2> "$log" & spid=$!
until grep -q "serving on" "$log"; do
  kill -0 $spid 2>/dev/null || { echo "the server stopped:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.01
done
t1=$(date +%s.%N)
wait $wpid || { echo "the server never said SERVING" >&2; exit 1; }
t2=$(date +%s.%N)
# The stock probe (health and reflection), as outside tools see the server.
"$venv/bin/python" "$tools/grpc_probe.py" "$addr" > /dev/null || { echo "the probe failed" >&2; exit 1; }
sleep 2
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
phases=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'store opened in [0-9.]*[mµ]*s\|views loaded in [0-9.]*[mµ]*s (rows read and opened in [0-9.]*[mµ]*s\|ledger open in [0-9.]*[mµ]*s\|list and search index built in [0-9.]*[mµ]*s' | tr '\n' ';')
echo "$(basename "$bin"): until 'serving on' $(secs "$t0" "$t1") s, until SERVING $(secs "$t0" "$t2") s; ${phases} RSS $(grep VmRSS /proc/$spid/status | awk '{print int($2/1024)}') MiB, peak $(grep VmHWM /proc/$spid/status | awk '{print int($2/1024)}') MiB"
kill -TERM $spid; wait $spid || true
