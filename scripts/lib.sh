# lib.sh - shell functions the scripts that start local services share (sourced, not run).

# live_pid PIDFILE EXECUTABLE -> the pid, if the file names a live process of that executable
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -cd '0-9' <"$1")
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$2")" ] || return 1
  echo "$pid"
}

# apt_install LOG PACKAGE... : install Debian packages quietly (apt-get update first if the install
# fails), their output in LOG; the packages' maintainer scripts may not start the distribution's own
# daemons (a policy-rc.d that exits 101, removed afterwards). On failure the log's tail goes to
# stderr and the status is apt-get's.
apt_install() {
  local aptlog=$1 policy=0 rc=0
  shift
  mkdir -p "$(dirname "$aptlog")"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$aptlog" 2>&1; then
    apt-get update -q >>"$aptlog" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$aptlog" 2>&1 || rc=$?
  fi
  [ "$policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || tail -n 15 "$aptlog" >&2
  return "$rc"
}
