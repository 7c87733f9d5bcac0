#!/usr/bin/env bash
# Start a real single-node SLURM cluster on 127.0.0.1 (Debian's slurm-wlm + munge, no systemd).
#
#   bash cluster/slurm_local/start.sh            # state under ${PHYSDIFF_SLURM_DIR:-/tmp/physdiff-slurm}
#   sinfo; sbatch ...; python cluster/launch.py --stage prior --gpus 0 ...
#   bash cluster/slurm_local/stop.sh
#
# Used by the tests (fixture `slurm_cluster`) and .ci/run. Idempotent: if the cluster already
# answers, it does nothing. Installs the Debian packages when missing (root, ≈ 10 s). Settings that
# matter for tests (measured here): cred_expire=5 and sched_interval=1 bring requeue latency from
# ~2 min to ~6 s; JobRequeue=1 lets preempted jobs come back; no slurmdbd (sacct is unavailable).
set -euo pipefail

STATE="${PHYSDIFF_SLURM_DIR:-/tmp/physdiff-slurm}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"

log() { echo "[slurm_local] $*" >&2; }

if command -v sinfo >/dev/null 2>&1 && [ -f "$STATE/slurmctld.pid" ] && timeout 5 sinfo -h >/dev/null 2>&1 \
   && timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  log "already running (state $STATE)"
  exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
   || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "error: SLURM is not installed and this is not root; install slurmctld slurmd slurm-client munge" >&2; exit 2; }
  log "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# ---- munge: key, run dir, daemon. PID 1 here does not reap zombies, so probe with `munge -n`.
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null || { echo "error: munged did not start (see /var/log/munge/munged.log)" >&2; exit 2; }

# ---- slurm.conf for one node on 127.0.0.1
mkdir -p "$STATE"/{spool,state,log} "$CONF_DIR"
NODE_LINE=$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]*/NodeName=localhost NodeAddr=127.0.0.1/' -e 's/ UpTime=.*//')
# Let the node over-subscribe memory: tests run small jobs, and RealMemory from slurmd -C can be
# tight once the OS is counted.
NODE_LINE=$(echo "$NODE_LINE" | sed -e 's/RealMemory=[0-9]*/RealMemory=1000/')
cat > "$CONF" <<CONF
# written by physdiff cluster/slurm_local/start.sh
ClusterName=physdiff
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=300
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
$NODE_LINE
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

# stale daemons from an earlier run (by pid file only: never pkill blindly)
bash "$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true

slurmctld -c -i -f "$CONF"
slurmd -N localhost -f "$CONF"

for _ in $(seq 100); do
  if timeout 3 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    log "up: $(sinfo -h -o '%P %D %T %c cpus')  (state $STATE)"
    exit 0
  fi
  sleep 0.2
done
echo "error: SLURM did not come up; see $STATE/log/slurmctld.log and slurmd.log" >&2
sinfo >&2 || true
exit 2
