#!/usr/bin/env bash
# How many appends a second one schema takes from several servers at once, with the append's
# advisory lock held through the commit's WAL flush (before 2026-11-27 evening) and with the
# lock released at an unflushed commit followed by a durability barrier (pg_log.rs). Each
# client stands for one server's writer connection and sends the append's statements
# pipelined, as pg_log/append.rs does: 8 rows of 220 bytes per append. PostgreSQL alone, no
# account-ledger: a benchmark, not a test.
# usage: scripts/pg-append-lock.sh [CONNINFO]
set -euo pipefail
conninfo=${1:-host=127.0.0.1 user=postgres dbname=test}
dir=$(mktemp -d); trap 'rm -rf "$dir"; psql "$conninfo" -qc "drop table if exists al_lock_bench" > /dev/null 2>&1' EXIT
psql "$conninfo" -qc "drop table if exists al_lock_bench" -c "create table al_lock_bench(pos bigserial primary key, payload text)"
rows="insert into al_lock_bench(payload) select repeat('x', 220) from generate_series(1, 8);"
printf '\\startpipeline\nbegin;\nselect pg_advisory_xact_lock(4242);\n%s\ncommit;\n\\endpipeline\n' "$rows" > "$dir/flush-under-lock.sql"
printf '\\startpipeline\nbegin;\nset local synchronous_commit to off;\nselect pg_advisory_xact_lock(4242);\n%s\ncommit;\nselect pg_logical_emit_message(true, %s, %s);\n\\endpipeline\n' \
  "$rows" "'account-ledger'" "''" > "$dir/barrier-after-commit.sql"
for clients in 1 3 12; do
  for scheme in flush-under-lock barrier-after-commit; do
    echo "$scheme, $clients appenders: $(pgbench "$conninfo" -n -M extended -T 5 -c $clients -j 2 -f "$dir/$scheme.sql" 2>&1 | grep -E '^tps|latency average' | tr '\n' ' ')"
  done
done
