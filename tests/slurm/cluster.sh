# A single-node Slurm cluster for the tests, started and stopped by them (sourced by bash).
#
#   slurm_up DIR     writes DIR/slurm.conf (one node named after `hostname -s`, partition
#                    debug), a munge key, starts munged, slurmctld and slurmd in the
#                    background with everything (state, spool, logs, sockets, pid files) in
#                    DIR, exports SLURM_CONF so that sbatch/squeue/scancel/scontrol use it,
#                    and waits until sinfo shows the node idle. Returns 1 with the reason in
#                    SLURM_WHY when it cannot (missing packages, daemons that do not start);
#                    SLURM_MISSING=1 when a package is missing.
#   slurm_down DIR   stops what slurm_up started (by the pids it recorded), whatever state it
#                    is in; safe to call twice. Call it from an EXIT trap.
#
# Settings: SLURM_CPUS (default 8) CPUs are declared for the node with
# SlurmdParameters=config_overrides, so that more single-CPU shards run at once than the
# machine has cores (the shards of a grader-bound run mostly wait on the network).
# Ports: 16817/16818 unless SLURM_PORT_BASE is set. The daemons run as the current user
# (root in CI); SlurmUser is that user.

slurm_up() {
    local dir=$1 host user i
    SLURM_WHY=""
    SLURM_MISSING=""
    for c in munged:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client \
             squeue:slurm-client scancel:slurm-client sinfo:slurm-client scontrol:slurm-client; do
        if ! command -v "${c%%:*}" >/dev/null 2>&1 && [ ! -x "/usr/sbin/${c%%:*}" ]; then
            # the form the test summary shows (optional packages: harness/scripts/install-deps.sh)
            SLURM_WHY="${c%%:*} missing (apt-get install ${c#*:})"
            SLURM_MISSING=1
            return 1
        fi
    done
    export PATH="$PATH:/usr/sbin"
    host=$(hostname -s)
    user=$(id -un)
    local base=${SLURM_PORT_BASE:-16817}
    mkdir -p "$dir/state" "$dir/spool"
    chmod 755 "$dir"
    # munge: its own key and socket in DIR, so the machine's munge (if any) is not touched.
    if ! dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 2>/dev/null; then
        SLURM_WHY="cannot write a munge key in $dir"; return 1
    fi
    chmod 600 "$dir/munge.key"
    if ! munged --force --key-file="$dir/munge.key" --socket="$dir/munge.sock" \
            --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
            --seed-file="$dir/munged.seed" 2>"$dir/munged.err"; then
        SLURM_WHY="munged did not start: $(head -c 300 "$dir/munged.err")"; return 1
    fi
    cat >"$dir/slurm.conf" <<EOF
# written by tests/slurm/cluster.sh: a one-node cluster for evalrun's tests
ClusterName=evalrun-test
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=2
SlurmdParameters=config_overrides
NodeName=$host CPUs=${SLURM_CPUS:-8} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -D -f "$dir/slurm.conf" >"$dir/slurmctld.out" 2>&1 &
    echo $! >"$dir/slurmctld.bgpid"
    slurmd -D -f "$dir/slurm.conf" >"$dir/slurmd.out" 2>&1 &
    echo $! >"$dir/slurmd.bgpid"
    for i in $(seq 1 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then return 0; fi
        if ! kill -0 "$(cat "$dir/slurmctld.bgpid")" 2>/dev/null; then
            SLURM_WHY="slurmctld exited: $(tail -c 300 "$dir/slurmctld.out" | tr '\n' ' ')"
            return 1
        fi
        if ! kill -0 "$(cat "$dir/slurmd.bgpid")" 2>/dev/null; then
            SLURM_WHY="slurmd exited: $(tail -c 300 "$dir/slurmd.out" | tr '\n' ' ')"
            return 1
        fi
        sleep 0.5
    done
    SLURM_WHY="the node did not become idle in 30 s: $(sinfo 2>&1 | tail -1)"
    return 1
}

slurm_down() {
    local dir=$1 f pid p
    [ -d "$dir" ] || return 0
    unset SLURM_CONF  # from here on, only this cluster's own processes carry it
    # Jobs first (their processes belong to slurmd), then the daemons, munged last.
    if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.bgpid" ]; then
        SLURM_CONF="$dir/slurm.conf" scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    for f in slurmd.bgpid slurmctld.bgpid munged.pid; do
        [ -f "$dir/$f" ] || continue
        pid=$(cat "$dir/$f" 2>/dev/null)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
        rm -f "$dir/$f"
    done
    # Wait (bounded) for them to go, then insist.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pgrep -f "$dir/slurm.conf" >/dev/null 2>&1 || break
        sleep 0.3
    done
    for pid in $(pgrep -f "$dir/slurm.conf" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    # Job steps outliving their slurmd (slurmstepd and the job's processes) carry
    # SLURM_CONF=DIR/slurm.conf in their environment: they are this cluster's, nobody else's.
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "SLURM_CONF=$dir/slurm.conf"; then
            kill -9 "$pid" 2>/dev/null
        fi
    done
    return 0
}
