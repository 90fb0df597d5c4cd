#!/usr/bin/env bash
# The smallest memory limit under which a run still completes.
#
#   benches/memory/limit.sh DATA PACK [LOW_MIB HIGH_MIB]
#
# Runs `strata run` inside a cgroup (v1 memory controller, or v2) whose
# memory limit is bisected between LOW and HIGH MiB (default 64 and 2048),
# to within 16 MiB. The limit counts everything the kernel charges the run
# (heap, and page cache it cannot drop). Needs root for the cgroup.
# STRATA (default target/release/strata) is the binary.
set -euo pipefail
data=$1 pack=$2 lo=${3:-64} hi=${4:-2048}
strata=${STRATA:-target/release/strata}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ -d /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory/strata-limit-$$
  mkdir "$cg"
  trap 'rm -rf "$out"; rmdir "$cg" 2>/dev/null || true' EXIT
  set_limit() {
    echo $(( $1 << 20 )) > "$cg/memory.limit_in_bytes"
    echo 0 > "$cg/memory.max_usage_in_bytes"
  }
  procs=$cg/cgroup.procs
else
  cg=/sys/fs/cgroup/strata-limit-$$
  mkdir "$cg"
  trap 'rm -rf "$out"; rmdir "$cg" 2>/dev/null || true' EXIT
  set_limit() { echo $(( $1 << 20 )) > "$cg/memory.max"; echo 0 > "$cg/memory.swap.max" 2>/dev/null || true; }
  procs=$cg/cgroup.procs
fi

attempt() {
  set_limit "$1"
  rm -rf "$out"/*
  local start=$SECONDS
  if sh -c "echo \$\$ > $procs; exec $strata --log-level warn run --pack $pack --data $data --out $out" >/dev/null 2>"$out.err"; then
    echo "  ${1} MiB: completed in $((SECONDS - start)) s"
    return 0
  else
    echo "  ${1} MiB: failed ($(tail -c 200 "$out.err" | tr '\n' ' '))"
    return 1
  fi
}

echo "bisecting the memory limit for $data"
attempt "$hi" || { echo "does not complete even at $hi MiB"; exit 1; }
while [ $((hi - lo)) -gt 16 ]; do
  mid=$(( (lo + hi) / 2 ))
  if attempt "$mid"; then hi=$mid; else lo=$mid; fi
done
echo "smallest limit that completes: $hi MiB (fails at $lo MiB)"
