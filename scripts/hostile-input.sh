#!/usr/bin/env bash
# The hostile uploads of issue "Damaged stores, hostile input, open networks", measured as a
# domain admin would send them: a zip whose users.csv has one 1.1 GB field, a zip whose
# manifest has a 1.1 GB value, and a zip of 2.76M duplicate rows (five dry runs). For each: the
# CLI's exit code and first line, and the server's peak RSS above its RSS just before (VmHWM
# reset through /proc/PID/clear_refs). A benchmark, not a test (tests/hostile_input.rs checks
# smaller files in the normal run).
# usage: scripts/hostile-input.sh BINARY WORKDIR [PORT]
set -euo pipefail
bin=$1 work=$2 port=${3:-50093}
rm -rf "$work"; mkdir -p "$work"; addr=127.0.0.1:$port
export ACCOUNT_LEDGER_SERVER="http://$addr"
python3 - "$work" <<'PY'
import sys, zipfile, zlib
work = sys.argv[1]
def big(zf, name, head, filler, size, tail=b""):
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = 9
    with zf.open(info, "w", force_zip64=True) as f:
        f.write(head)
        block = filler * (1 << 20 // len(filler) + 1)
        block = block[: 1 << 20]
        for _ in range(size >> 20):
            f.write(block)
        f.write(tail)
opts = dict(compression=zipfile.ZIP_DEFLATED, compresslevel=1)
with zipfile.ZipFile(f"{work}/field.zip", "w", **opts) as zf:
    zf.writestr("manifest.csv", "propertyName,value\nfile.users,bulk\n")
    big(zf, "users.csv", b"sourcedId,status,enabledUser,username,givenName,familyName,email,role\nS1,active,true,ann,",
        b"a", 1100 << 20, b",Lee,ann@x.org,student\n")
with zipfile.ZipFile(f"{work}/manifest.zip", "w", **opts) as zf:
    big(zf, "manifest.csv", b"propertyName,value\nfile.users,", b"b", 1100 << 20, b"\n")
with zipfile.ZipFile(f"{work}/dups.zip", "w", **opts) as zf:
    row = b"S1,active,true,ann,Ann,Lee,ann@x.org,student\n"
    with zf.open("users.csv", "w") as f:
        f.write(b"sourcedId,status,enabledUser,username,givenName,familyName,email,role\n")
        chunk = row * 10000
        for _ in range(276):
            f.write(chunk)
    zf.writestr("manifest.csv", "propertyName,value\nfile.users,bulk\n")
PY
ls -l "$work"/*.zip | awk '{print $5, $9}'
"$bin" serve --data-dir "$work/data" --listen "$addr" > "$work/serve.out" 2> "$work/serve.err" & spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q 'listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
export ACCOUNT_LEDGER_TOKEN=$(grep -o 'al_[A-Za-z0-9_-]*' "$work/serve.out" | head -1)
"$bin" domain create d1 --limit 100000 > /dev/null
export ACCOUNT_LEDGER_TOKEN=$("$bin" token add --principal admin --role domain-admin --domain d1)
kib() { grep "^$1:" /proc/$spid/status | awk '{print $2}'; }
measure() {
  local label=$1; shift
  echo 5 > /proc/$spid/clear_refs; local idle; idle=$(kib VmRSS)
  local t0 t1 rc=0 out
  t0=$(date +%s.%N)
  out=$("$@" 2>&1 | head -c 600) || rc=$?
  t1=$(date +%s.%N)
  printf '%s: %.1f s; peak RSS above idle %d MiB; RSS after %d MiB above idle\n  %s\n' "$label" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" $(( ($(kib VmHWM) - idle) / 1024 )) \
    $(( ($(kib VmRSS) - idle) / 1024 )) "$(echo "$out" | head -2 | tr '\n' ' ' | cut -c1-300)"
}
measure "zip, users.csv with one 1.1 GB field" "$bin" import --domain d1 "$work/field.zip"
measure "zip, manifest with a 1.1 GB value" "$bin" import --domain d1 "$work/manifest.zip"
measure "zip, 2.76M duplicate rows, five dry runs" bash -c "for i in 1 2 3 4 5; do '$bin' import --domain d1 --dry-run '$work/dups.zip' > '$work/dups.out' 2>&1 || true; done; tail -1 '$work/dups.out'"
