#!/usr/bin/env bash
# The deploy/rollback scenario for real: Docker Engine 20.10 + Compose v2 run a compose stack of the
# reference service, and Molecule (scenario `release`) deploys, releases, rolls back and checks.
#
#   bash scripts/release_scenario.sh            # tests/compose_stack (pytest), then molecule test -s release
#   bash scripts/release_scenario.sh converge   # any other molecule command for the scenario
#   bash scripts/release_scenario.sh --scenario managed [COMMAND]
#                                               # the managed-node scenario: the app host is a container
#                                               # (Molecule's docker driver) reached over the docker connection
#
# Needs root (dockerd, debootstrap) on a Debian-like host; scripts/docker_env.sh installs what is
# missing. Molecule runs with its own HOME (.cache/<scenario>-home), ANSIBLE_COLLECTIONS_PATH pointing at
# .build/collections, DOCKER_HOST at our dockerd's socket and DOCKER_CONFIG at the folder holding the
# Compose v2 plugin. dockerd is stopped afterwards when this script started it (CWS_KEEP_DOCKER=1 keeps
# it); CWS_RELEASE_KEEP=1 keeps the stack.
# Prints how long the image build and the scenario took; the output of every playbook run and the
# gate's reports stay in .cache/<scenario>-scenario (CWS_RELEASE_REPORT_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scenario=release
if [ "${1:-}" = --scenario ]; then
  scenario=${2:?"--scenario needs a name: release or managed"}
  shift 2
fi
case "$scenario" in
  release|managed) ;;
  *) echo "release_scenario: --scenario must be release or managed, not '$scenario'" >&2; exit 2 ;;
esac
command=${1:-test}

say() { echo "release_scenario: $*" >&2; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }

[ "$(id -u)" = 0 ] || { say "needs root (dockerd, debootstrap)"; exit 2; }
if [ ! -x .venv/bin/molecule ] || [ ! -e .build/collections/ansible_collections/cleanwithsnapshot/release ]; then
  bash scripts/bootstrap.sh
fi

started_engine=0
if ! { [ -f .cache/docker/dockerd.pid ] && kill -0 "$(cat .cache/docker/dockerd.pid)" 2>/dev/null; }; then
  started_engine=1
fi
eval "$(bash scripts/docker_env.sh)"
if [ "$started_engine" = 1 ] && [ -z "${CWS_KEEP_DOCKER:-}" ]; then
  trap 'bash scripts/docker_env.sh stop || true' EXIT
fi

if [ "$command" = test ] && [ "$scenario" = release ]; then
  # The release repository the scenario deploys, checked on a real PostgreSQL first (about 10 s).
  .venv/bin/python -m pytest tests/compose_stack -q -p no:cacheprovider
fi

t0=$(now)
bash tests/compose_stack/build_images.sh
say "runtime image ready in $(since "$t0") s"

export HOME="$root/.cache/$scenario-home"
mkdir -p "$HOME"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
if [ "$scenario" = managed ]; then
  # The folder the node shares at the same path, the engine's socket and CLI it is given, and what the docker
  # driver's own playbooks need besides community.docker.
  export CWS_MANAGED_ROOT="$root/.cache/managed-scenario/shared"
  mkdir -p "$CWS_MANAGED_ROOT"
  export CWS_DOCKER_SOCKET="${DOCKER_HOST#unix://}"
  CWS_DOCKER_CLI=$(readlink -f "$(command -v docker)")
  export CWS_DOCKER_CLI
  CWS_COLLECTIONS_DEST="$root/.build/test-collections" \
    bash scripts/fetch_collections.sh molecule/managed/requirements.yml >/dev/null
  ANSIBLE_COLLECTIONS_PATH="$ANSIBLE_COLLECTIONS_PATH:$root/.build/test-collections"
fi
export PATH="$root/.venv/bin:$PATH"
export DOCKER_HOST DOCKER_CONFIG
export ANSIBLE_FORCE_COLOR=false PY_COLORS=0 NO_COLOR=1
# The playbook runs' output, their timings and the gate's reports stay here after the scenario.
export CWS_RELEASE_REPORT_DIR="${CWS_RELEASE_REPORT_DIR:-$root/.cache/$scenario-scenario}"

t1=$(now)
rc=0
molecule "$command" -s "$scenario" || rc=$?
say "molecule $command -s $scenario: rc $rc in $(since "$t1") s"
if [ -f "$CWS_RELEASE_REPORT_DIR/runs/timings.json" ]; then
  say "playbook runs (seconds, rc), output in $CWS_RELEASE_REPORT_DIR:"
  cat "$CWS_RELEASE_REPORT_DIR/runs/timings.json" >&2
fi
exit "$rc"
