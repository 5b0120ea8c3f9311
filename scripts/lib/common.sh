# shellcheck shell=bash
# Shared helpers for scripts/*: logging, the repo root, Node 24 on PATH, and an exit-hook stack.
# Source it; it defines functions and variables and sets the EXIT/INT/TERM/HUP traps (exit hooks).

if [[ -n "${NETSERVA_COMMON_SH:-}" ]]; then return 0; fi
NETSERVA_COMMON_SH=1

NETSERVA_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export NETSERVA_REPO

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch (for timings printed by the scripts).
now_ms() { date +%s%3N; }

# --- exit hooks --------------------------------------------------------------------------------
# on_exit CMD: run CMD (one string, eval'ed) when the script exits, newest first, whatever the
# reason (normal end, `set -e` failure, Ctrl-C, SIGTERM). Each hook runs even if an earlier one
# fails. INT/TERM/HUP become an exit, so the EXIT trap is the one place cleanup happens.
NETSERVA_EXIT_HOOKS=()
on_exit() { NETSERVA_EXIT_HOOKS+=("$*"); }
_netserva_run_exit_hooks() {
  local rc=$? i
  trap - EXIT INT TERM HUP
  set +e
  for ((i = ${#NETSERVA_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
    eval "${NETSERVA_EXIT_HOOKS[i]}"
  done
  exit "$rc"
}

# run_interruptible CMD...: run CMD as if in the foreground, except that Ctrl-C (or TERM) ends
# the script too. Bash alone would not: when a foreground child handles SIGINT and exits on its
# own, as node tools and buf do, bash ignores the signal and goes on with the next step. Here the
# child runs asynchronously and `wait` is interrupted, so the trap stops the child and exits.
NETSERVA_CHILD=""
run_interruptible() {
  "$@" <&0 &
  NETSERVA_CHILD=$!
  local rc=0
  wait "$NETSERVA_CHILD" || rc=$?
  NETSERVA_CHILD=""
  return "$rc"
}
_netserva_on_signal() { # EXIT_CODE
  local pid="$NETSERVA_CHILD" i
  set +e
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  exit "$1"
}
trap _netserva_run_exit_hooks EXIT
trap '_netserva_on_signal 130' INT
trap '_netserva_on_signal 143' TERM
trap '_netserva_on_signal 129' HUP

# --- scratch directories -----------------------------------------------------------------------
# owned_tmpdir NAME: print a new ${TMPDIR:-/tmp}/netserva-mail-NAME.XXXXXX that records the PID of
# this script (owner.pid) and is deleted at exit. Call it without $(…) losing the exit hook:
#   owned_tmpdir test-run; dir="$REPLY"
owned_tmpdir() {
  REPLY="$(mktemp -d "${TMPDIR:-/tmp}/netserva-mail-$1.XXXXXX")"
  echo "$$" >"$REPLY/owner.pid"
  on_exit "rm -rf -- '$REPLY'"
}

# reap_owned_tmpdirs NAME [FUNCTION]: for each netserva-mail-NAME.* directory whose owner is gone
# (its script was killed with SIGKILL), call FUNCTION DIR if given, then delete it.
reap_owned_tmpdirs() {
  local dir owner
  for dir in "${TMPDIR:-/tmp}/netserva-mail-$1."*; do
    [[ -d "$dir" ]] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null; then continue; fi
    # A directory still being set up has no owner.pid yet: leave young ones alone.
    if [[ -z "$owner" ]] && [[ -n "$(find "$dir" -maxdepth 0 -mmin -1)" ]]; then continue; fi
    log "removing stale $dir"
    if [[ -n "${2:-}" ]]; then "$2" "$dir"; fi
    rm -rf -- "$dir"
  done
}

# --- Node ----------------------------------------------------------------------------------------
# npm ci when node_modules is missing or older than package-lock.json. The machine's npm (on
# Node 20) installs exactly the locked versions, including the pinned `node` (24) package.
ensure_node_modules() {
  local repo="$NETSERVA_REPO"
  if [[ ! -f "$repo/node_modules/.package-lock.json" || "$repo/package-lock.json" -nt "$repo/node_modules/.package-lock.json" ]]; then
    log "npm ci (node_modules missing or older than package-lock.json)"
    (cd "$repo" && npm ci --no-audit --no-fund)
  fi
}

# Put the project's pinned Node (node_modules/.bin/node) and tools first on PATH.
use_project_node() {
  export PATH="$NETSERVA_REPO/node_modules/.bin:$PATH"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if ((major < 24)); then
    die "node on PATH is $(node -v); expected the pinned Node >= 24 from node_modules/.bin (run npm ci)"
  fi
}

# A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
free_port() {
  node -e 'const s=require("node:net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close();});'
}
