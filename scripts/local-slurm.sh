#!/usr/bin/env bash
# local-slurm.sh - a real single-node Slurm on this machine, for crackops development and CI.
#
# Daemons (Debian 12 packages, no systemd, no cgroups; must run as root):
#   munged (private key and socket) -> mariadbd (private datadir, 127.0.0.1)
#   -> slurmdbd -> slurmctld -> slurmd
#
# Usage: scripts/local-slurm.sh COMMAND
#   install    install the Debian packages only (apt-get; runs `apt-get update` if needed)
#   start      install if needed, write the configs, start what is not running, wait for an
#              idle node. Idempotent: a second start changes nothing. If a generated config
#              changed, the Slurm daemons are restarted to pick it up.
#   stop       cancel every job, then stop the five daemons (only the pids recorded in DIR,
#              each checked against its executable before it is signalled)
#   restart    stop + start
#   status     one line per daemon and the node; exit 0 only if all five are up
#   env        print `export SLURM_CONF=...` (use: eval "$(scripts/local-slurm.sh env)")
#   stop-dbd   stop slurmdbd only: sacct then fails as on a cluster whose accounting is down
#   start-dbd  start slurmdbd again (and wait until sacct answers)
#   stop-ctld  stop slurmctld only (its state is saved): running jobs go on on the node, while
#              squeue, sbatch and scancel fail as on a cluster whose controller restarts
#   start-ctld start slurmctld again from its saved state (and wait until it answers)
#
# Environment:
#   CRACKOPS_SLURM_DIR   configs, state, logs, pids and the database (default /tmp/crackops-slurm).
#                        Must be readable by whoever submits (not under /root).
#   CRACKOPS_SLURM_CPUS  CPUs the node advertises (default: max(nproc, 8))
#   CRACKOPS_SLURM_MEM_MB  RealMemory the node advertises (default: max(physical MB, 65536))
#   CRACKOPS_SLURM_LINK_ETC  1 (default): point /etc/slurm/slurm.conf at DIR/etc/slurm.conf when
#                        that path is free or already ours, so clients work without SLURM_CONF
#   CRACKOPS_SLURM_TIMEOUT  seconds to wait for each daemon (default 60)
#   CRACKOPS_SLURM_PORTS "slurmctld slurmd slurmdbd mariadb" ports (default "6817 6818 6819 3307")
#   CRACKOPS_SLURM_CLUSTER  ClusterName (default crackops)
#   CRACKOPS_SLURM_FIRST_JOB_ID  FirstJobId (default 1). Give a second cluster on the same host its
#                        own range: with cgroups, job ids name the cgroup folders every cluster shares
#   SLURM_CONF           respected: when it points at a slurm.conf this script wrote, that cluster's
#                        folder is DIR (unless CRACKOPS_SLURM_DIR is set); when it points at any
#                        other cluster, start/stop/restart/stop-dbd/start-dbd/stop-ctld/start-ctld
#                        refuse (exit 3), so nothing ever stops or starts a cluster other than the one SLURM_CONF names
#   CRACKOPS_SLURM_CGROUP  auto (default): proctrack/cgroup + task/cgroup (cgroup v1, memory enforced)
#                        when /sys/fs/cgroup/{freezer,memory} are mounted and writable, else
#                        proctrack/linuxproc + task/none; yes / no force one or the other
#
# The node declares more CPUs/memory than the machine has (SlurmdParameters=config_overrides),
# so crackops' default request (4 CPUs, 16 GB, 4 h) is accepted and runs.
#
# With cgroups (see CRACKOPS_SLURM_CGROUP) every process a job starts is in the job's cgroup:
# scancel and the time limit kill all of them, even ones re-parented to init (with linuxproc a
# process that outlives the batch shell escapes Slurm), and --mem is enforced by the kernel, so a
# job over its memory ends OUT_OF_MEMORY. Without cgroups memory is not enforced, and only jobs
# that exit on SIGTERM (crackops' do) leave nothing behind.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CMD=${1:-}
DIR=${CRACKOPS_SLURM_DIR:-/tmp/crackops-slurm}
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
MARK='crackops scripts/local-slurm.sh'
ASKED_CONF=${SLURM_CONF:-}   # the caller's (the daemons section exports this cluster's own)
# SLURM_CONF names the cluster to act on: one this script made lives two levels above its slurm.conf
if [ -n "${SLURM_CONF:-}" ] && [ -z "${CRACKOPS_SLURM_DIR:-}" ] && [ -f "$SLURM_CONF" ] \
   && grep -q "$MARK" "$SLURM_CONF" 2>/dev/null; then
  DIR=$(dirname "$(dirname "$(realpath -m "$SLURM_CONF")")")
  # its name as written there (start-dbd registers it), unless given
  : "${CRACKOPS_SLURM_CLUSTER:=$(sed -n 's/^ClusterName=//p' "$SLURM_CONF" | head -n 1)}"
fi

NODE=$(hostname -s)
CLUSTER=${CRACKOPS_SLURM_CLUSTER:-crackops}
FIRST_JOB_ID=${CRACKOPS_SLURM_FIRST_JOB_ID:-1}
PARTITION=batch
read -r PORT_CTLD PORT_SLURMD PORT_DBD PORT_DB <<<"${CRACKOPS_SLURM_PORTS:-6817 6818 6819 3307}"
WAIT=${CRACKOPS_SLURM_TIMEOUT:-60}
LINK_ETC=${CRACKOPS_SLURM_LINK_ETC:-1}
NPROC=$(nproc)
PHYS_MB=$(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo)
CPUS=${CRACKOPS_SLURM_CPUS:-$(( NPROC > 8 ? NPROC : 8 ))}
MEM_MB=${CRACKOPS_SLURM_MEM_MB:-$(( PHYS_MB > 65536 ? PHYS_MB : 65536 ))}

ETC=$DIR/etc RUN=$DIR/run LOGS=$DIR/log SPOOL=$DIR/spool MUNGE_DIR=$DIR/munge DB_DIR=$DIR/db
CONF=$ETC/slurm.conf
SOCK=$MUNGE_DIR/munge.socket
PASSFILE=$ETC/db.pass
CGROUP=${CRACKOPS_SLURM_CGROUP:-auto}
cgroup_usable() {
  local c
  for c in freezer memory; do
    grep -q " /sys/fs/cgroup/$c cgroup " /proc/mounts || return 1
    mkdir -p "/sys/fs/cgroup/$c/crackops-probe.$$" 2>/dev/null || return 1
    rmdir "/sys/fs/cgroup/$c/crackops-probe.$$"
  done
}
if [ "$CGROUP" = auto ]; then if cgroup_usable; then CGROUP=yes; else CGROUP=no; fi; fi
if [ "$CGROUP" = yes ]; then PROCTRACK=proctrack/cgroup TASKPLUGIN=task/cgroup
else PROCTRACK=proctrack/linuxproc TASKPLUGIN=task/none; fi
PACKAGES="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"

say() { printf 'local-slurm: %s\n' "$*" >&2; }
# same_cluster: SLURM_CONF is unset or names this DIR's slurm.conf
same_cluster() { [ -z "$ASKED_CONF" ] || [ "$(realpath -m "$ASKED_CONF")" = "$(realpath -m "$CONF")" ]; }
own_cluster() {
  same_cluster && return 0
  say "error: SLURM_CONF=$ASKED_CONF is not the cluster in $DIR ($CONF): refusing to $CMD its daemons"
  say "hint: unset SLURM_CONF to act on $DIR, or set CRACKOPS_SLURM_DIR to the folder of the cluster SLURM_CONF names"
  exit 3
}
fail() { say "error: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || fail "$CMD needs root"; }

# until_ok WHAT CMD... : retry CMD every 0.25 s for up to $WAIT seconds
until_ok() {
  local what=$1 deadline=$(( SECONDS + WAIT ))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { say "gave up waiting for $what after ${WAIT}s"; return 1; }
    sleep 0.25
  done
}

# halt NAME PIDFILE EXECUTABLE : TERM, wait up to 30 s, then KILL
halt() {
  local pid n
  if ! pid=$(live_pid "$2" "$3"); then rm -f "$2"; return 0; fi
  say "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for n in $(seq 120); do [ -e "/proc/$pid" ] || break; sleep 0.25; done
  if [ -e "/proc/$pid" ]; then say "$1 did not stop, killing"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$2"
}

# ------------------------------------------------------------------ packages
installed() {
  local b
  for b in slurmctld slurmd slurmdbd sbatch sacct sacctmgr squeue munged mariadbd mariadb-install-db; do
    command -v "$b" >/dev/null 2>&1 || return 1
  done
  compgen -G "/usr/lib/*/slurm-wlm/accounting_storage_mysql.so" >/dev/null
}

cmd_install() {
  installed && return 0
  need_root
  say "installing $PACKAGES"
  # shellcheck disable=SC2086
  apt_install "$DIR.apt.log" $PACKAGES || fail "apt-get install failed (log: $DIR.apt.log)"
  installed || fail "packages installed but some programs are missing"
}

# ------------------------------------------------------------------ configuration
SLURM_CONF_CHANGED=0 DBD_CONF_CHANGED=0
# write_if_changed FILE MODE < content ; status 0 when the file was (re)written
write_if_changed() {
  local tmp
  tmp=$(mktemp "$1.new.XXXXXX")
  cat >"$tmp"
  chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$1"
}

write_configs() {
  mkdir -p "$ETC" "$RUN" "$LOGS" "$SPOOL/ctld" "$SPOOL/slurmd" "$MUNGE_DIR" "$DB_DIR/data" "$DB_DIR/run"
  chmod 755 "$DIR" "$ETC" "$RUN" "$LOGS" "$MUNGE_DIR"   # munge clients need to reach the socket
  [ -s "$PASSFILE" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PASSFILE")
  local pass; pass=$(cat "$PASSFILE")

  write_if_changed "$CONF" 644 <<EOF && SLURM_CONF_CHANGED=1 || true
# Written by crackops scripts/local-slurm.sh; edits are overwritten on start.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT_CTLD
SlurmdPort=$PORT_SLURMD
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SOCK,cred_expire=10
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
MailProg=/bin/true
ProctrackType=$PROCTRACK
TaskPlugin=$TASKPLUGIN
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=5,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
EnforcePartLimits=ALL
KillWait=5
MinJobAge=300
FirstJobId=$FIRST_JOB_ID
InactiveLimit=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$PORT_DBD
AccountingStoragePass=$SOCK
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES DefaultTime=1:00:00 MaxTime=2-00:00:00 State=UP
EOF

  # cgroup v1 (the hybrid layout); cores are not constrained: the node declares more CPUs than exist
  write_if_changed "$ETC/cgroup.conf" 644 <<EOF && SLURM_CONF_CHANGED=1 || true
# Written by crackops scripts/local-slurm.sh
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
EOF

  write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF && DBD_CONF_CHANGED=1 || true
# Written by crackops scripts/local-slurm.sh
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$PORT_DBD
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$PORT_DB
StorageUser=slurm
StoragePass=$pass
StorageLoc=crackops_acct
EOF

  write_if_changed "$ETC/my.cnf" 644 <<EOF || true
# Written by crackops scripts/local-slurm.sh: a private MariaDB for slurmdbd
[mysqld]
user=root
datadir=$DB_DIR/data
socket=$DB_DIR/run/mysqld.sock
pid-file=$DB_DIR/run/mysqld.pid
log-error=$LOGS/mariadb.log
bind-address=127.0.0.1
port=$PORT_DB
skip-name-resolve
skip-log-bin
innodb_buffer_pool_size=128M
innodb_lock_wait_timeout=900
[client]
socket=$DB_DIR/run/mysqld.sock
user=root
EOF

  if [ "$LINK_ETC" = 1 ]; then
    local etc=/etc/slurm/slurm.conf
    mkdir -p /etc/slurm
    if [ "$(readlink -f "$etc" 2>/dev/null)" = "$CONF" ]; then :
    elif [ ! -e "$etc" ] && [ ! -L "$etc" ]; then ln -s "$CONF" "$etc"
    elif [ -L "$etc" ] && { [ ! -e "$etc" ] || grep -q 'crackops scripts/local-slurm.sh' "$etc"; }; then ln -sfn "$CONF" "$etc"
    else say "note: $etc is not ours; clients need SLURM_CONF=$CONF"
    fi
  fi
}

# ------------------------------------------------------------------ daemons
export SLURM_CONF=$CONF

munge_works() { munge -S "$SOCK" -n </dev/null 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1; }
up_munge() {
  live_pid "$RUN/munged.pid" /usr/sbin/munged >/dev/null && munge_works && return 0
  if [ ! -s "$MUNGE_DIR/munge.key" ]; then
    mungekey --create --keyfile="$MUNGE_DIR/munge.key" 2>/dev/null ||
      (umask 077; head -c 1024 /dev/urandom >"$MUNGE_DIR/munge.key")
  fi
  chmod 600 "$MUNGE_DIR/munge.key"
  say "starting munged"
  munged --force --socket="$SOCK" --key-file="$MUNGE_DIR/munge.key" --pid-file="$RUN/munged.pid" \
         --log-file="$LOGS/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
  until_ok munged munge_works || { tail -n 5 "$LOGS/munged.log" >&2; fail "munged did not start"; }
}

db_works() { mariadb-admin --defaults-file="$ETC/my.cnf" ping; }
up_mariadb() {
  if ! live_pid "$DB_DIR/run/mysqld.pid" /usr/sbin/mariadbd >/dev/null; then
    if [ ! -d "$DB_DIR/data/mysql" ]; then
      say "creating the MariaDB datadir"
      mariadb-install-db --defaults-file="$ETC/my.cnf" --auth-root-authentication-method=socket \
        --skip-test-db >"$LOGS/mariadb-install.log" 2>&1 ||
        { tail -n 10 "$LOGS/mariadb-install.log" >&2; fail "mariadb-install-db failed"; }
    fi
    say "starting mariadbd on 127.0.0.1:$PORT_DB"
    rm -f "$DB_DIR/run/mysqld.sock"
    setsid -f /usr/sbin/mariadbd --defaults-file="$ETC/my.cnf" </dev/null >>"$LOGS/mariadb.log" 2>&1
  fi
  until_ok mariadbd db_works || { tail -n 5 "$LOGS/mariadb.log" >&2; fail "mariadbd did not start"; }
  local pass; pass=$(cat "$PASSFILE")
  mariadb --defaults-file="$ETC/my.cnf" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
    GRANT ALL ON crackops_acct.* TO 'slurm'@'127.0.0.1';
    FLUSH PRIVILEGES;" || fail "could not create the database user for slurmdbd"
}

dbd_works() { timeout 10 sacctmgr -n -P list cluster format=cluster; }
up_slurmdbd() {
  if ! live_pid "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd >/dev/null; then
    say "starting slurmdbd on 127.0.0.1:$PORT_DBD"
    slurmdbd
  fi
  until_ok slurmdbd dbd_works || { tail -n 5 "$LOGS/slurmdbd.log" >&2; fail "slurmdbd did not start"; }
  if ! timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    say "registering cluster $CLUSTER"
    timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

ctld_works() { timeout 10 scontrol ping | grep -q 'is UP'; }
up_slurmctld() {
  if ! live_pid "$RUN/slurmctld.pid" /usr/sbin/slurmctld >/dev/null; then
    say "starting slurmctld on 127.0.0.1:$PORT_CTLD"
    slurmctld
  fi
  until_ok slurmctld ctld_works || { tail -n 5 "$LOGS/slurmctld.log" >&2; fail "slurmctld did not start"; }
}

node_state() { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }
up_slurmd() {
  if ! live_pid "$RUN/slurmd.pid" /usr/sbin/slurmd >/dev/null; then
    say "starting slurmd: node $NODE advertises $CPUS CPUs, $MEM_MB MB (has $NPROC CPUs, $PHYS_MB MB)"
    slurmd -N "$NODE"
  fi
  local deadline=$(( SECONDS + WAIT )) st
  while :; do
    st=$(node_state)
    case "$st" in idle|mixed|allocated|completing) break ;; esac
    case "$st" in *drain*|down*|*fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;; esac
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 5 "$LOGS/slurmd.log" >&2; fail "node $NODE is not ready (state ${st:-unknown})"; }
    sleep 0.25
  done
}

cmd_start() {
  need_root
  local t0=$SECONDS
  cmd_install
  write_configs
  if [ "$SLURM_CONF_CHANGED" = 1 ] || [ "$DBD_CONF_CHANGED" = 1 ]; then
    if live_pid "$RUN/slurmd.pid" /usr/sbin/slurmd >/dev/null || live_pid "$RUN/slurmctld.pid" /usr/sbin/slurmctld >/dev/null; then
      say "configuration changed: restarting slurmctld and slurmd"
      halt slurmd "$RUN/slurmd.pid" /usr/sbin/slurmd
      halt slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld
    fi
    [ "$DBD_CONF_CHANGED" = 1 ] && halt slurmdbd "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd
  fi
  up_munge
  up_mariadb
  up_slurmdbd
  up_slurmctld
  up_slurmd
  say "up in $(( SECONDS - t0 ))s: node $NODE is $(node_state), partition $PARTITION; SLURM_CONF=$CONF"
}

cmd_stop() {
  need_root
  if live_pid "$RUN/slurmctld.pid" /usr/sbin/slurmctld >/dev/null; then
    local ids; ids=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [ -n "${ids// /}" ]; then
      say "cancelling jobs $ids"
      # shellcheck disable=SC2086
      timeout 10 scancel $ids 2>/dev/null || true
      until_ok "jobs to end" bash -c '[ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ]' || true
    fi
  fi
  halt slurmd "$RUN/slurmd.pid" /usr/sbin/slurmd
  halt slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld
  halt slurmdbd "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd
  halt mariadbd "$DB_DIR/run/mysqld.pid" /usr/sbin/mariadbd
  halt munged "$RUN/munged.pid" /usr/sbin/munged
}

cmd_status() {
  local rc=0 row name pf exe pid
  for row in "munged:$RUN/munged.pid:/usr/sbin/munged" "mariadbd:$DB_DIR/run/mysqld.pid:/usr/sbin/mariadbd" \
             "slurmdbd:$RUN/slurmdbd.pid:/usr/sbin/slurmdbd" "slurmctld:$RUN/slurmctld.pid:/usr/sbin/slurmctld" \
             "slurmd:$RUN/slurmd.pid:/usr/sbin/slurmd"; do
    IFS=: read -r name pf exe <<<"$row"
    if pid=$(live_pid "$pf" "$exe"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
  done
  echo "SLURM_CONF=$CONF"
  if live_pid "$RUN/slurmctld.pid" /usr/sbin/slurmctld >/dev/null; then
    timeout 10 sinfo -N -o '%N %P %T cpus=%c mem=%m' || true
  fi
  return $rc
}

case "$CMD" in
  install)   cmd_install ;;
  start)     own_cluster; cmd_start ;;
  stop)      own_cluster; cmd_stop ;;
  restart)   own_cluster; cmd_stop; cmd_start ;;
  status)    cmd_status ;;
  env)       echo "export SLURM_CONF=$CONF" ;;
  stop-dbd)  own_cluster; need_root; halt slurmdbd "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd ;;
  start-dbd) own_cluster; need_root; [ -s "$CONF" ] || write_configs; up_munge; up_mariadb; up_slurmdbd ;;
  stop-ctld) own_cluster; need_root; halt slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld ;;
  start-ctld) own_cluster; need_root; [ -s "$CONF" ] || write_configs; up_munge; up_slurmctld ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; [ -z "$CMD" ] || [ "$CMD" = help ] || exit 2 ;;
esac
