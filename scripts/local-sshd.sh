#!/usr/bin/env bash
# local-sshd.sh - a real OpenSSH server on this machine, standing in for a cluster's login node,
# for the tests of crackops' ssh backend (and for trying `--backend ssh` without a cluster).
#
# What it sets up (Debian 12 packages, no systemd; must run as root):
#   - the distribution's openssh-server, rsync, python3 and python3-venv (apt-get)
#   - a separate user (default crackremote) with its own home, Debian's own /usr/bin/python3 and a
#     virtualenv ~/venv with crackops INSTALLED from this checkout (a wheel, not editable: the remote
#     side is an installed copy, as on a cluster). Dependencies (with the [cpu] extra) are installed
#     once per pyproject.toml; crackops itself is reinstalled on every start, so the remote version
#     is the checkout's.
#   - that user's login environment as a cluster's would have it: the local Slurm's SLURM_CONF
#     (scripts/local-slurm.sh env) and ~/venv/bin on PATH, at the top of ~/.bashrc (before Debian's
#     "not interactive: return" guard: sshd runs remote commands through bash, which reads ~/.bashrc)
#   - sshd on 127.0.0.1 only, on its own port, with its own sshd_config, throwaway host key, pid file
#     and log in DIR; key-only login, for that user only
#   - for the caller (root, "the laptop"): a key pair authorized for that user, and an ssh client
#     config with a Host alias, the host key pinned (StrictHostKeyChecking yes)
#
# Usage: scripts/local-sshd.sh COMMAND
#   start   install what is missing, set up the user and its virtualenv, start sshd if it is not
#           running, and check that `ssh HOST crackops --help` and `ssh HOST sacct` answer.
#           Idempotent: a second start only reinstalls crackops in the remote virtualenv.
#   stop    stop this sshd (the pid in DIR, checked against its executable); sessions already open
#           (multiplexed masters) end by themselves
#   status  sshd's pid and whether a login works; exit 0 only if both
#   env     print the exports the tests use: eval "$(scripts/local-sshd.sh env)"
#
# Environment:
#   CRACKOPS_SSHD_DIR   config, keys, pid file, log, wheel (default /tmp/crackops-sshd)
#   CRACKOPS_SSHD_PORT  port on 127.0.0.1 (default 2222)
#   CRACKOPS_SSHD_USER  the remote user (default crackremote)
#   CRACKOPS_SSHD_HOST  the Host alias in the generated client config (default crackops-test)
#   CRACKOPS_SSHD_CHECKOUT  the crackops source installed remotely (default: this script's checkout)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CMD=${1:-}
DIR=${CRACKOPS_SSHD_DIR:-/tmp/crackops-sshd}
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
PORT=${CRACKOPS_SSHD_PORT:-2222}
RUSER=${CRACKOPS_SSHD_USER:-crackremote}
ALIAS=${CRACKOPS_SSHD_HOST:-crackops-test}
HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=${CRACKOPS_SSHD_CHECKOUT:-$(dirname "$HERE")}
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

SSHD=/usr/sbin/sshd
CONF=$DIR/sshd_config
PIDFILE=$DIR/sshd.pid
LOG=$DIR/sshd.log
HOSTKEY=$DIR/ssh_host_ed25519_key
CLIENTKEY=$DIR/client_ed25519
CLIENTCONF=$DIR/ssh_config
KNOWN=$DIR/known_hosts
PACKAGES="openssh-server openssh-client rsync python3 python3-venv"
MARK_BEGIN='# >>> crackops scripts/local-sshd.sh: the cluster login environment >>>'
MARK_END='# <<< crackops scripts/local-sshd.sh <<<'

say() { printf 'local-sshd: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || fail "$CMD needs root"; }

ssh_test() { ssh -F "$CLIENTCONF" -o BatchMode=yes -o ConnectTimeout=10 "$ALIAS" "$@"; }

# ------------------------------------------------------------------ packages
installed() {
  [ -x "$SSHD" ] && command -v ssh >/dev/null && command -v rsync >/dev/null && [ -x /usr/bin/python3 ] \
    && /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

cmd_install() {
  installed && return 0
  need_root
  say "installing $PACKAGES"
  # shellcheck disable=SC2086
  apt_install "$DIR.apt.log" $PACKAGES || fail "apt-get install failed (log: $DIR.apt.log)"
  installed || fail "packages installed but sshd, rsync or python3-venv is missing"
}

# ------------------------------------------------------------------ the remote user
as_user() { runuser -u "$RUSER" -- "$@"; }

setup_user() {
  if ! id "$RUSER" >/dev/null 2>&1; then
    say "creating user $RUSER"
    useradd --create-home --shell /bin/bash "$RUSER"
  fi
  # no password, yet not locked ('!'): without PAM, sshd refuses a locked account even a key
  [ "$(getent shadow "$RUSER" | cut -d: -f2)" = '*' ] || usermod -p '*' "$RUSER"
  HOME_DIR=$(getent passwd "$RUSER" | cut -d: -f6)
  chmod 755 "$HOME_DIR"    # Slurm jobs run as the user; nothing else needs more
  install -d -m 700 -o "$RUSER" -g "$RUSER" "$HOME_DIR/.ssh"
}

# the checkout as a wheel the user can read (the remote side installs it, as a cluster user would)
build_wheel() {
  local py
  rm -rf "$DIR/wheel"
  mkdir -p "$DIR/wheel"
  py=$(command -v python3)
  [ -x "$CHECKOUT/.venv/bin/python" ] && py=$CHECKOUT/.venv/bin/python
  "$py" -m pip wheel --no-deps -q -w "$DIR/wheel" "$CHECKOUT" >"$DIR/wheel.log" 2>&1 \
    || { tail -n 15 "$DIR/wheel.log" >&2; fail "could not build a wheel of $CHECKOUT (log: $DIR/wheel.log)"; }
  chmod -R a+rX "$DIR/wheel"
  WHEEL=$(ls "$DIR"/wheel/crackops-*.whl)
}

setup_venv() {
  local venv=$HOME_DIR/venv stamp key
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv with /usr/bin/python3"
    as_user /usr/bin/python3 -m venv "$venv"
  fi
  key=$(sha256sum "$CHECKOUT/pyproject.toml" | cut -c1-16)
  stamp=$venv/.crackops-deps-$key
  if [ ! -e "$stamp" ]; then
    say "installing crackops' dependencies in $venv (once per pyproject.toml)"
    as_user env -C "$HOME_DIR" "$venv/bin/pip" install -q "$WHEEL[cpu]" >"$DIR/pip.log" 2>&1 \
      || { tail -n 15 "$DIR/pip.log" >&2; fail "pip install failed (log: $DIR/pip.log)"; }
    rm -f "$venv"/.crackops-deps-*
    as_user touch "$stamp"
  fi
  # crackops itself on every start: the remote version is the checkout's
  as_user env -C "$HOME_DIR" "$venv/bin/pip" install -q --no-deps --force-reinstall "$WHEEL" >"$DIR/pip.log" 2>&1 \
    || { tail -n 15 "$DIR/pip.log" >&2; fail "pip install of crackops failed (log: $DIR/pip.log)"; }
}

# the login environment a cluster gives: the scheduler's config and the user's tools on PATH
setup_login_env() {
  local rc=$HOME_DIR/.bashrc slurm_conf tmp
  slurm_conf=$(bash "$HERE/local-slurm.sh" env 2>/dev/null | sed -n 's/^export SLURM_CONF=//p' | head -n 1)
  slurm_conf=${slurm_conf:-/tmp/crackops-slurm/etc/slurm.conf}
  [ -f "$rc" ] || install -m 644 -o "$RUSER" -g "$RUSER" /etc/skel/.bashrc "$rc" 2>/dev/null || touch "$rc"
  tmp=$(mktemp)
  {
    echo "$MARK_BEGIN"
    echo "export SLURM_CONF=$slurm_conf"
    echo "export PATH=\"\$HOME/venv/bin:\$PATH\""
    echo "$MARK_END"
    sed "/^$(printf '%s' "$MARK_BEGIN" | sed 's/[][\/.*^$]/\\&/g')\$/,/^$(printf '%s' "$MARK_END" | sed 's/[][\/.*^$]/\\&/g')\$/d" "$rc"
  } >"$tmp"
  if ! cmp -s "$tmp" "$rc"; then cat "$tmp" >"$rc"; fi
  rm -f "$tmp"
  chown "$RUSER:$RUSER" "$rc"
}

# ------------------------------------------------------------------ keys and configs
setup_keys() {
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  [ -s "$HOSTKEY" ] || ssh-keygen -q -t ed25519 -N '' -C "crackops-test-host" -f "$HOSTKEY"
  [ -s "$CLIENTKEY" ] || ssh-keygen -q -t ed25519 -N '' -C "crackops-test-client" -f "$CLIENTKEY"
  chmod 600 "$HOSTKEY" "$CLIENTKEY"
  local ak=$HOME_DIR/.ssh/authorized_keys
  if ! grep -qF "$(cut -d' ' -f2 "$CLIENTKEY.pub")" "$ak" 2>/dev/null; then
    cat "$CLIENTKEY.pub" >>"$ak"
  fi
  chown "$RUSER:$RUSER" "$ak"
  chmod 600 "$ak"
  echo "$ALIAS $(cut -d' ' -f1,2 "$HOSTKEY.pub")" >"$KNOWN"
  cat >"$CLIENTCONF" <<EOF
# Written by crackops scripts/local-sshd.sh: the laptop side's view of the test login node.
Host $ALIAS
  HostName 127.0.0.1
  Port $PORT
  User $RUSER
  IdentityFile $CLIENTKEY
  IdentitiesOnly yes
  HostKeyAlias $ALIAS
  UserKnownHostsFile $KNOWN
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  PasswordAuthentication no
  KbdInteractiveAuthentication no
EOF
  cat >"$CONF" <<EOF
# Written by crackops scripts/local-sshd.sh; edits are overwritten on start.
Port $PORT
ListenAddress 127.0.0.1
HostKey $HOSTKEY
PidFile $PIDFILE
AllowUsers $RUSER
PermitRootLogin no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes yes
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp internal-sftp
LogLevel INFO
EOF
}

start_sshd() {
  local pid n
  mkdir -p /run/sshd   # its privilege separation directory
  chmod 755 /run/sshd
  "$SSHD" -t -f "$CONF" || fail "sshd rejects $CONF"
  if pid=$(live_pid "$PIDFILE" "$SSHD"); then
    kill -HUP "$pid"   # rereads its config
  else
    "$SSHD" -f "$CONF" -E "$LOG"
  fi
  for n in $(seq 80); do
    live_pid "$PIDFILE" "$SSHD" >/dev/null && ssh_test true 2>/dev/null && return 0
    sleep 0.25
  done
  tail -n 20 "$LOG" >&2 || true
  fail "sshd on 127.0.0.1:$PORT did not accept a login (log: $LOG)"
}

check_remote() {
  ssh_test crackops --help >/dev/null || fail "ssh $ALIAS crackops --help failed: the remote PATH lacks ~/venv/bin?"
  ssh_test sacct -n -X -S now >/dev/null || fail "ssh $ALIAS sacct failed: the remote login environment lacks SLURM_CONF?"
}

cmd_start() {
  need_root
  cmd_install
  mkdir -p "$DIR"
  setup_user
  build_wheel
  setup_venv
  setup_login_env
  setup_keys
  start_sshd
  check_remote
  say "sshd up on 127.0.0.1:$PORT: ssh -F $CLIENTCONF $ALIAS"
}

cmd_stop() {
  local pid n
  if ! pid=$(live_pid "$PIDFILE" "$SSHD"); then rm -f "$PIDFILE"; say "sshd not running"; return 0; fi
  say "stopping sshd (pid $pid)"
  kill -TERM "$pid"
  for n in $(seq 40); do [ -e "/proc/$pid" ] || break; sleep 0.25; done
  [ -e "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

cmd_status() {
  local pid rc=0
  if pid=$(live_pid "$PIDFILE" "$SSHD"); then echo "sshd: running (pid $pid, 127.0.0.1:$PORT)"; else echo "sshd: stopped"; rc=1; fi
  if [ -f "$CLIENTCONF" ] && ssh_test true 2>/dev/null; then echo "login: ok (ssh -F $CLIENTCONF $ALIAS)"
  else echo "login: fails"; rc=1; fi
  return $rc
}

cmd_env() {
  echo "export CRACKOPS_SSH_CONFIG=$CLIENTCONF"
  echo "export CRACKOPS_SSH_TEST_HOST=$ALIAS"
  echo "export CRACKOPS_SSH_TEST_USER=$RUSER"
}

case "$CMD" in
  start) cmd_start ;;
  stop) need_root; cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  install) cmd_install ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
