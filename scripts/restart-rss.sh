#!/usr/bin/env bash
# Start BINARY on an existing data dir (e.g. the one scripts/district-1m.sh leaves), time it
# until health says SERVING, print its RSS 2 s later, stop it. Run it with two builds on the same
# data dir to compare them in the same minute. A benchmark, not a test.
# usage: scripts/restart-rss.sh BINARY DATA_DIR [PORT]
set -euo pipefail
bin=$1 data=$2 addr=127.0.0.1:${3:-50092}
tools="$(cd "$(dirname "$0")/tools" && pwd)"
"$bin" serve --data-dir "$data" --listen "$addr" > /dev/null 2>&1 & spid=$!
t0=$(date +%s.%N)
until "$("$tools/venv.sh")/bin/python" "$tools/grpc_probe.py" "$addr" > /dev/null 2>&1; do sleep 0.05; done
t1=$(date +%s.%N)
sleep 2
echo "$(basename $bin): until SERVING $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s, RSS $(grep VmRSS /proc/$spid/status | awk '{print int($2/1024)}') MiB, peak $(grep VmHWM /proc/$spid/status | awk '{print int($2/1024)}') MiB"
kill -TERM $spid; wait $spid || true
