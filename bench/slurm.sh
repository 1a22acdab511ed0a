#!/usr/bin/env bash
# bench/slurm.sh — Slurm on this machine, one node, running N trivial jobs (`true`), so that
# Ordo's end-to-end benchmark (`cargo run --release -p ordo-bench --bin e2e`) can divide by it
# in the same run.
#
# Steps:
#   1. Slurm (slurmctld, slurmd, slurm-client) and munge come from Debian; they are installed
#      with apt-get when a program is missing (root only; otherwise the run is skipped).
#   2. Everything lives under $WORK: slurm.conf (passed to every command as SLURM_CONF), a
#      munge key and socket of its own, state, spool, logs, PID files. /etc/slurm and the
#      system's munge are not used. Daemons left over by an earlier run of this script are
#      stopped first, by the PIDs it recorded.
#   3. munged, slurmctld and slurmd start in the background; one warm-up job goes through.
#   4. Scenarios ($SCENARIOS, in order):
#        loop   N × `sbatch --wrap=true`, one after the other, as a submitting script would;
#        array  one `sbatch --array=1-N --wrap=true` (Slurm's bulk submission).
#      A job counts as done when its jobcomp/filetxt record is written (polled every 20 ms).
#   5. Daemons are stopped at the end (TERM, then KILL after 10 s), also on error or Ctrl-C.
#
# Output on stdout, one JSON object a line:
#   {"name":"slurm_loop"|"slurm_array","n":…,"submit_seconds":…,"submit_per_s":…,
#    "seconds":…,"per_s":…,"submit_to_start_p50_ms":…,"submit_to_start_p99_ms":…,
#    "jobs_recorded":…,"slurm_version":"…"}
#   `seconds`/`per_s`: first submission → last job recorded (end to end); submit→start comes
#   from the slurmctld log (millisecond timestamps; null when it cannot be read).
# When Slurm cannot be installed or started: {"name":"slurm","skipped":"<why>"} and exit 3.
# Progress and diagnostics go to stderr.
#
# Env: N (2000)  SCENARIOS ("loop array")  WORK (/var/tmp/ordo-bench-slurm)
#      CPUS (256: CPUs declared for the node = jobs at once)  TIMEOUT_S (600 per scenario)
#      CTLD_PORT (6827)  SLURMD_PORT (6828)  KEEP_RUNNING (0; 1 leaves the daemons up)
set -uo pipefail

N="${N:-2000}"
SCENARIOS="${SCENARIOS:-loop array}"
WORK="${WORK:-/var/tmp/ordo-bench-slurm}"
CPUS="${CPUS:-256}"
TIMEOUT_S="${TIMEOUT_S:-600}"
CTLD_PORT="${CTLD_PORT:-6827}"
SLURMD_PORT="${SLURMD_PORT:-6828}"
KEEP_RUNNING="${KEEP_RUNNING:-0}"

export PATH="$PATH:/usr/sbin:/sbin"
export SLURM_CONF="$WORK/slurm.conf"
PIDS="$WORK/pids"
MUNGE_DIR="$WORK/munge"
MUNGE_SOCKET="$MUNGE_DIR/socket"
MUNGE_KEY="$WORK/munge-key/munge.key"
NODE="$(hostname -s)"

say() { printf '[slurm.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
skip() {  # the run cannot happen here: say why on stdout (JSON) and stderr, exit 3
    say "skipped: $*"
    printf '{"name":"slurm","skipped":%s}\n' "$(json_str "$*")"
    exit 3
}
epoch() { date +%s.%N; }

# ------------------------------------------------------------------ 1. programs
missing=""
for p in slurmctld slurmd sbatch squeue sinfo scontrol munged mungekey; do
    command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || skip "Slurm is not installed (missing:$missing) and installing it needs root"
    command -v apt-get >/dev/null 2>&1 || skip "Slurm is not installed (missing:$missing) and there is no apt-get"
    say "installing slurmctld slurmd slurm-client munge from Debian (missing:$missing)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >&2; then
        apt-get update -q >&2 || skip "apt-get update failed"
        apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >&2 || skip "apt-get install of Slurm failed"
    fi
fi
[ "$(id -u)" = 0 ] || skip "running slurmd needs root (it starts jobs as their users)"
command -v python3 >/dev/null 2>&1 || skip "python3 is needed to write the JSON results"
getent passwd munge >/dev/null || skip "the munge user does not exist (is the munge package installed?)"

# ------------------------------------------------------------------ 2. private setup
stop_recorded() {  # $1: a PID file this script wrote
    local file="$1" pid i
    [ -s "$file" ] || { rm -f "$file"; return 0; }
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid did not stop on TERM in 10 s; sending KILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$file"
}
stop_daemons() {
    stop_recorded "$PIDS/slurmd"
    stop_recorded "$PIDS/slurmctld"
    stop_recorded "$PIDS/munged"
}
on_exit() {
    local rc=$?
    if [ "$KEEP_RUNNING" = 1 ]; then
        say "daemons left running (KEEP_RUNNING=1); SLURM_CONF=$SLURM_CONF"
    else
        stop_daemons
        say "daemons stopped"
    fi
    exit "$rc"
}

mkdir -p "$PIDS"
stop_daemons
rm -rf "$WORK/state" "$WORK/spool" "$WORK/log" "$MUNGE_DIR" "${MUNGE_KEY%/*}"
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log" "$MUNGE_DIR" "${MUNGE_KEY%/*}"
# The socket's directory must be open to every user; the key's only to munge.
chown munge:munge "$MUNGE_DIR" "${MUNGE_KEY%/*}" && chmod 0755 "$MUNGE_DIR" &&
    chmod 0700 "${MUNGE_KEY%/*}" || skip "cannot prepare $MUNGE_DIR for munge"
mungekey --create --keyfile="$MUNGE_KEY" --force >&2 || skip "mungekey cannot create a key"
chown munge:munge "$MUNGE_KEY" && chmod 0600 "$MUNGE_KEY"

cat >"$SLURM_CONF" <<EOF
# Written by ordo bench/slurm.sh; private to $WORK.
ClusterName=ordobench
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/log/slurmctld.pid
SlurmdPidFile=$WORK/log/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=error
LogTimeFormat=iso8601_ms
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=default_queue_depth=10000,batch_sched_delay=0
PriorityType=priority/basic
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.txt
MaxJobCount=200000
MaxArraySize=200001
MinJobAge=2
KillWait=5
InactiveLimit=0
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=bench Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# ------------------------------------------------------------------ 3. daemons
trap on_exit EXIT
trap 'exit 130' INT TERM

runuser -u munge -- munged --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCKET" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" --num-threads=8 >&2 ||
    skip "munged did not start: $(tail -3 "$MUNGE_DIR/munged.log" 2>/dev/null)"
for _ in $(seq 50); do [ -s "$MUNGE_DIR/munged.pid" ] && break; sleep 0.1; done
cp "$MUNGE_DIR/munged.pid" "$PIDS/munged" 2>/dev/null || skip "munged wrote no PID file"
munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null || skip "munge cannot encode and decode a credential"

slurmctld -D -i >"$WORK/log/slurmctld.out" 2>&1 &
echo $! >"$PIDS/slurmctld"
up=0
for _ in $(seq 100); do
    if scontrol ping 2>/dev/null | grep -q "is UP"; then up=1; break; fi
    sleep 0.1
done
[ "$up" = 1 ] || skip "slurmctld did not answer in 10 s: $(tail -3 "$WORK/log/slurmctld.log" "$WORK/log/slurmctld.out" 2>/dev/null | tr '\n' ' ')"

slurmd -D -N "$NODE" >"$WORK/log/slurmd.out" 2>&1 &
echo $! >"$PIDS/slurmd"
node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -1; }
for _ in $(seq 150); do
    case "$(node_state)" in idle) break ;; esac
    sleep 0.2
done
if [ "$(node_state)" != idle ]; then
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1
    sleep 1
fi
[ "$(node_state)" = idle ] || skip "the node is $(node_state), not idle: $(tail -3 "$WORK/log/slurmd.log" "$WORK/log/slurmd.out" 2>/dev/null | tr '\n' ' ')"
VERSION="$(sinfo -V 2>/dev/null | awk '{print $2}')"
say "Slurm $VERSION up on node $NODE ($CPUS CPUs declared)"

# ------------------------------------------------------------------ 4. scenarios
cd "$WORK" || exit 1
JOBCOMP="$WORK/log/jobcomp.txt"
recorded() { if [ -e "$JOBCOMP" ]; then wc -l <"$JOBCOMP"; else echo 0; fi; }

wait_recorded() {  # $1: records expected in total; prints the instant they were there
    local want="$1" deadline
    deadline=$(( $(date +%s) + TIMEOUT_S ))
    while [ "$(recorded)" -lt "$want" ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "timeout: $(recorded) of $want jobs recorded after ${TIMEOUT_S} s"
            return 1
        fi
        sleep 0.02
    done
    epoch
}

submit() { sbatch --parsable -o /dev/null -e /dev/null "$@"; }

say "warm-up job"
submit --wrap=true >/dev/null || skip "sbatch refused the warm-up job"
wait_recorded 1 >/dev/null || skip "the warm-up job did not finish"

for scenario in $SCENARIOS; do
    before="$(recorded)"
    case "$scenario" in
    loop)
        say "loop: $N x sbatch --wrap=true"
        t0="$(epoch)"
        first=""
        for ((i = 0; i < N; i++)); do
            id="$(submit --wrap=true)" || { say "sbatch failed at job $i"; exit 1; }
            [ -n "$first" ] || first="$id"
        done
        t1="$(epoch)"
        last="$id"
        ;;
    array)
        say "array: sbatch --array=1-$N --wrap=true"
        t0="$(epoch)"
        id="$(submit --array=1-"$N" --wrap=true)" || { say "sbatch --array failed"; exit 1; }
        t1="$(epoch)"
        first="${id%%_*}"
        last="$first"
        ;;
    *)
        say "unknown scenario $scenario (known: loop array)"
        exit 2
        ;;
    esac
    t2="$(wait_recorded $((before + N)))" || exit 1
    sleep 0.5 # the last lines of the slurmctld log
    python3 - "$scenario" "$N" "$t0" "$t1" "$t2" "$first" "$last" "$WORK/log/slurmctld.log" \
        "$(( $(recorded) - before ))" "$VERSION" <<'PY'
# Submit→start from the slurmctld log: "_slurm_rpc_submit_batch_job: JobId=<id>" is the
# submission; "sched: Allocate JobId=<id>" or "JobId=<array>_<task>(<id>)" the start.
import json, re, sys
from datetime import datetime
scenario, n, t0, t1, t2, first, last, log, recorded, version = sys.argv[1:]
n, t0, t1, t2, first, last = int(n), float(t0), float(t1), float(t2), int(first), int(last)
stamp = re.compile(r"^\[([0-9T:.\-]+)\] ")
submitted, started = {}, {}
try:
    with open(log, errors="replace") as f:
        for line in f:
            m = stamp.match(line)
            if not m:
                continue
            t = datetime.fromisoformat(m.group(1)).timestamp()
            if "_slurm_rpc_submit_batch_job: JobId=" in line:
                job = int(re.search(r"JobId=(\d+)", line).group(1))
                submitted[job] = t
            elif "sched: Allocate JobId=" in line or "Started JobId=" in line:
                spec = re.search(r"JobId=(\S+)", line).group(1)
                task = re.match(r"(\d+)_\d+\((\d+)\)", spec)
                own, parent = (int(task.group(2)), int(task.group(1))) if task else (int(re.match(r"\d+", spec).group(0)),) * 2
                started.setdefault(own, (t, parent))
except OSError:
    pass
waits = sorted((t - submitted[p]) * 1000 for t, p in started.values() if first <= p <= last and p in submitted)
def pct(q):
    if not waits:
        return None
    return round(waits[min(len(waits) - 1, int(round((len(waits) - 1) * q)))], 1)
print(json.dumps({
    "name": f"slurm_{scenario}", "n": n,
    "submit_seconds": round(t1 - t0, 3), "submit_per_s": round(n / (t1 - t0), 1),
    "seconds": round(t2 - t0, 3), "per_s": round(n / (t2 - t0), 1),
    "submit_to_start_p50_ms": pct(0.50), "submit_to_start_p99_ms": pct(0.99),
    "jobs_recorded": int(recorded), "slurm_version": version,
}, separators=(",", ":")), flush=True)
PY
done
