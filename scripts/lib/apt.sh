# shellcheck shell=bash
# Debian packages the test suites and the demo need, installed only when missing, with the host's
# own copies of the daemons kept stopped (the tests run private instances under their own roots).
# Source after common.sh.

# The one list. scripts/test and scripts/demo both install it.
NETSERVA_APT_PACKAGES=(
  postgresql-15
  prometheus
  openssh-server
  postfix postfix-sqlite
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve dovecot-managesieved dovecot-sqlite
  rspamd
  clamav-daemon
  swaks
  sqlite3
  iproute2
  dnsutils
  pdns-server pdns-backend-sqlite3
  pebble
  mmdebstrap systemd-container
)

# Init scripts / units of host daemons those packages bring (some through Recommends). A private
# instance started by a test must not share ports, /run or queue directories with these.
NETSERVA_HOST_SERVICES=(
  postfix dovecot rspamd redis-server clamav-daemon clamav-freshclam pdns
  prometheus prometheus-node-exporter ssh
)

# Print the packages of "$@" that are not fully installed, one per line (one dpkg-query call).
apt_missing_packages() {
  local -A installed=()
  local name status
  while IFS=' ' read -r name status; do
    [[ "$status" == "install ok installed" ]] && installed["${name%%:*}"]=1
  done < <(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true)
  for name in "$@"; do
    [[ -n "${installed[$name]:-}" ]] || printf '%s\n' "$name"
  done
}

# Run a command as root: directly, or through sudo when not root.
_as_root() {
  if ((EUID == 0)); then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    warn "need root (or sudo) to run: $*"; return 1
  fi
}

# True when the init system is systemd (PID 1), which is not the case in containers/microVMs.
_pid1_is_systemd() { [[ "$(ps -p 1 -o comm= 2>/dev/null)" == systemd ]]; }

# Install the missing ones of "$@" (default: NETSERVA_APT_PACKAGES). apt-get update runs only when
# something is missing. Maintainer scripts are forbidden to start daemons (a temporary
# policy-rc.d returning 101) unless the machine already has a policy-rc.d of its own.
apt_ensure_packages() {
  local -a want=("$@")
  ((${#want[@]})) || want=("${NETSERVA_APT_PACKAGES[@]}")
  local -a missing
  mapfile -t missing < <(apt_missing_packages "${want[@]}")
  ((${#missing[@]})) || return 0

  log "apt: installing ${missing[*]}"
  if ((EUID != 0)) && ! command -v sudo >/dev/null; then
    die "not root and no sudo: install these Debian packages first: ${missing[*]}"
  fi
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e "$policy" ]]; then
    _as_root sh -c "printf '#!/bin/sh\n# netserva-mail scripts: no daemon starts during apt-get install\nexit 101\n' > $policy && chmod 755 $policy"
    own_policy=1
    on_exit "_as_root rm -f $policy"
  fi

  local -a apt=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get -y -q
    -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  local try
  for try in 1 2 3; do
    if _as_root "${apt[@]}" update </dev/null; then break; fi
    ((try < 3)) || die "apt-get update failed"
    warn "apt-get update failed (another apt running?), retrying"; sleep 10
  done
  _as_root "${apt[@]}" install "${missing[@]}" </dev/null || die "apt-get install failed"

  if ((own_policy)); then _as_root rm -f "$policy"; fi
  mapfile -t missing < <(apt_missing_packages "${want[@]}")
  ((${#missing[@]} == 0)) || die "apt: still not installed: ${missing[*]}"
  apt_disable_host_services
}

# Keep the host's daemons from starting at boot (they are not what the tests use).
apt_disable_host_services() {
  local s
  for s in "${NETSERVA_HOST_SERVICES[@]}"; do
    if _pid1_is_systemd; then
      _as_root systemctl disable --now "$s" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/$s ]]; then
      _as_root update-rc.d "$s" disable >/dev/null 2>&1 || true
    fi
  done
}

# Stop those host daemons if they run. `service` calls the init script directly (invoke-rc.d
# would ask policy-rc.d, which may forbid even "stop"). Opt out: NETSERVA_KEEP_HOST_DAEMONS=1.
apt_stop_host_daemons() {
  [[ "${NETSERVA_KEEP_HOST_DAEMONS:-0}" == 1 ]] && return 0
  local s
  for s in "${NETSERVA_HOST_SERVICES[@]}"; do
    if _pid1_is_systemd; then
      if systemctl is-active --quiet "$s" 2>/dev/null; then
        log "stopping host service $s"; _as_root systemctl stop "$s" || warn "could not stop $s"
      fi
    elif [[ -x /etc/init.d/$s ]] && /etc/init.d/"$s" status >/dev/null 2>&1; then
      log "stopping host service $s"; _as_root service "$s" stop >/dev/null 2>&1 || warn "could not stop $s"
    fi
  done
}
