#!/usr/bin/env bash
# Stop the single-node SLURM started by start.sh, by its pid files (munge is left running: harmless).
set -uo pipefail
STATE="${PHYSDIFF_SLURM_DIR:-/tmp/physdiff-slurm}"
for name in slurmd slurmctld; do
  pidfile="$STATE/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
echo "[slurm_local] stopped" >&2
