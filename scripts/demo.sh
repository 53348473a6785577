#!/usr/bin/env bash
# `make demo`: start the local reference stack (PostgreSQL + the reference service), run the release
# gate (GO), switch one fault on and run it again (NO-GO naming the criterion), then stop everything: on every
# way out (success, a failed step, Ctrl-C, TERM) the reference service and its PostgreSQL are stopped.
# DEMO_DIR (default .cache/demo) holds the stack's state and the logs, DEMO_ARTIFACTS_DIR the reports.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
# Absolute: the playbooks run from playbooks/, and the stop must work from there too.
refstack="$root/tests/harness/refstack.py"
demo_dir=${DEMO_DIR:-$root/.cache/demo}
mkdir -p "$demo_dir"
state="$demo_dir/refstack.json"
export CWS_LOCAL_STACK="$demo_dir/local-stack.json"
export CWS_ARTIFACTS_DIR=${DEMO_ARTIFACTS_DIR:-$root/artifacts/demo}
# The demo's own rate-limit ledger (the runs below share the stack's budget through it).
export CWS_RATE_LEDGER_DIR="$demo_dir/rate-ledger"
rm -rf "$CWS_RATE_LEDGER_DIR"
fault=${DEMO_FAULT:-policy_dropped}

# Stop the stack this demo started (a no-op without its state file); a stop that fails says so, never silently.
stop_stack() {
  local out
  if ! out=$(python "$refstack" stop --state "$state" 2>&1); then
    printf 'demo: could not stop the reference stack (state %s):\n%s\n' "$state" "$out" >&2
    return 1
  fi
  [ -z "$out" ] || printf '%s\n' "$out"
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM HUP
  stop_stack || rc=1
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
stop_stack || exit 1

banner() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show_report() {
  sed -n '1,/^## All criteria/p' "$CWS_ARTIFACTS_DIR/gonogo.md" | sed '$d'
}

banner "Starting the local reference stack (PostgreSQL + reference service)"
python "$refstack" start --state "$state" --name cws_demo || exit 1
python "$root/tests/harness/local_inventory.py" --state "$state" --out "$CWS_LOCAL_STACK" || exit 1

cd "$root/playbooks"
banner "1. Healthy stack: ansible-playbook release.yml -i local"
started=$(date +%s.%N)
ansible-playbook release.yml -i local >"$demo_dir/run-go.log" 2>&1
rc=$?
printf 'exit code %s after %.1f s (full log: %s)\n' "$rc" "$(echo "$(date +%s.%N) - $started" | bc)" "$demo_dir/run-go.log"
show_report
[ "$rc" -eq 0 ] || { echo "demo: expected GO on the healthy stack" >&2; exit 1; }

banner "2. Fault switched on: $fault (python tests/harness/refstack.py fault $fault)"
python "$refstack" fault "$fault" --state "$state" || exit 1
echo "(the service allows 30 requests a minute per client, as the real one does, and the first run spent most of"
echo " them: this run waits until they leave the window instead of drawing 429s, so it takes about a minute)"
ansible-playbook verify.yml -i local >"$demo_dir/run-nogo.log" 2>&1
rc=$?
printf 'exit code %s (full log: %s)\n' "$rc" "$demo_dir/run-nogo.log"
show_report
grep -m1 -E "msg: .NO-GO" "$demo_dir/run-nogo.log" || true
[ "$rc" -ne 0 ] || { echo "demo: expected NO-GO with the fault on" >&2; exit 1; }

banner "Stopping the stack; reports are in $CWS_ARTIFACTS_DIR"
