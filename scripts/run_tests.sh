#!/usr/bin/env bash
# Runs the test stages; `all` is what `make test` and CI run. Each stage fails loudly, and a pytest
# run that collects no test is a failure, never a silent pass.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
stage=${1:-all}
failed=()

timed() {  # runs one stage and says how long it took, so CI time can be traced to a stage
  local name=$1 start=$SECONDS rc=0
  [ "$1" = run_pytest ] && name=$2
  "$@" || rc=$?
  echo "run_tests: stage '$name' took $((SECONDS - start)) s"
  return "$rc"
}

monitoring_packages() {
  # Prometheus, Alertmanager and Caddy for the SLO, alert and canary tests: installed as root, else named.
  bash scripts/system_packages.sh ensure monitoring || failed+=("monitoring-packages")
}

# pytest runs in CWS_PYTEST_WORKERS processes (pytest-xdist; 1 runs it in this one): most tests wait on a
# rate-limit window, a soak or a playbook run, not on the CPU. Whole files go to one process, so a
# file's module-scoped stacks are shared and its tests run in order as in a serial run; each process
# has its own PostgreSQL cluster, reference stacks and ports.
workers=${CWS_PYTEST_WORKERS:-3}
case "$workers" in
  ''|*[!0-9]*|0) echo "run_tests: CWS_PYTEST_WORKERS must be a whole number of processes, 1 or more; got '$workers'" >&2; exit 2 ;;
esac
parallel_args=()
[ "$workers" -gt 1 ] && parallel_args=(-n "$workers" --dist loadfile)

run_pytest() {
  local label=$1; shift
  echo "=== $label"
  python -m pytest "${parallel_args[@]}" "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "run_tests: pytest collected no tests for '$label': that is a failure" >&2
    rc=1
  fi
  [ "$rc" -eq 0 ] || failed+=("$label")
}

sanity() {
  echo "=== ansible-test sanity"
  bash scripts/sanity.sh || failed+=("sanity")
}

lint() {
  echo "=== ansible-lint (production profile)"
  (ansible-lint --offline --profile production) || failed+=("ansible-lint")
  echo "=== changelog lint"
  (antsibull-changelog lint) || failed+=("changelog-lint")
  echo "=== AWX configuration syntax"
  (ansible-playbook --syntax-check awx/configure_awx.yml) || failed+=("awx-syntax")
  echo "=== reference docs up to date"
  (bash scripts/build_docs.sh --check) || failed+=("reference-docs")
}

packaging() {
  echo "=== packaging: build, install into a clean path, verify from the installed collection"
  bash scripts/packaging_test.sh || failed+=("packaging")
}

integration_targets() {
  echo "=== ansible-test integration targets (one per module, tests/integration/targets)"
  bash scripts/integration_targets.sh || failed+=("integration-targets")
}

sanity_matrix() {
  echo "=== ansible-test sanity on ansible-core 2.21 / Python 3.12"
  bash scripts/sanity_matrix.sh || failed+=("sanity-2.21")
}

molecule() {
  echo "=== molecule scenarios"
  bash scripts/run_molecule.sh || failed+=("molecule")
}

release_scenario() {
  echo "=== Docker Engine scenarios: release (deploy, release, automatic rollback on a compose stack), managed (the app host a managed node)"
  if [ -n "${CWS_SKIP_RELEASE_SCENARIO:-}" ]; then
    echo "run_tests: release scenarios SKIPPED because CWS_SKIP_RELEASE_SCENARIO is set" >&2
    return
  fi
  # One dockerd for both scenarios, stopped after the second when it was started here.
  local engine_was_up=0 rc=0
  [ -f .cache/docker/dockerd.pid ] && kill -0 "$(cat .cache/docker/dockerd.pid)" 2>/dev/null && engine_was_up=1
  CWS_KEEP_DOCKER=1 bash scripts/release_scenario.sh || { failed+=("release-scenario"); rc=1; }
  CWS_KEEP_DOCKER=1 bash scripts/release_scenario.sh --scenario managed || { failed+=("managed-scenario"); rc=1; }
  [ "$engine_was_up" = 1 ] || bash scripts/docker_env.sh stop || true
  return "$rc"
}

case "$stage" in
  unit) run_pytest unit tests/unit ;;
  integration) monitoring_packages; run_pytest integration tests/integration tests/reference_service ;;
  sanity) sanity ;;
  lint) lint ;;
  molecule) molecule ;;
  packaging) packaging ;;
  release-scenario) release_scenario ;;
  sanity-matrix) sanity_matrix ;;
  integration-targets) integration_targets ;;
  all)
    # The release scenario spends most of its time waiting for the service's rate-limit window between playbook
    # runs, so it runs beside the other stages (its own stack, ports, HOME and rate ledger); its output is
    # printed when it ends.
    # System packages first, all at once: apt-get takes one lock (the scenarios' docker_env.sh asks for its own).
    monitoring_packages
    # (when the containers cannot be installed, the scenario itself says so and fails)
    bash scripts/system_packages.sh check containers >/dev/null 2>&1 || bash scripts/system_packages.sh ensure containers || true
    release_log=$(mktemp "${TMPDIR:-/tmp}/cws-release-scenario.XXXXXX")
    ( timed release_scenario ) >"$release_log" 2>&1 &
    release_pid=$!
    timed run_pytest "unit+integration" tests/unit tests/integration tests/reference_service -p no:cacheprovider --durations=30
    timed sanity
    timed integration_targets
    timed sanity_matrix
    timed lint
    timed packaging
    timed molecule
    release_rc=0
    wait "$release_pid" || release_rc=$?
    cat "$release_log"
    rm -f "$release_log"
    [ "$release_rc" -eq 0 ] || failed+=("docker-scenarios")
    ;;
  *) echo "usage: $0 unit|integration|integration-targets|sanity|sanity-matrix|lint|packaging|molecule|release-scenario|all" >&2; exit 2 ;;
esac

if [ ${#failed[@]} -gt 0 ]; then
  echo "run_tests: FAILED stages: ${failed[*]}" >&2
  exit 1
fi
echo "run_tests: all stages passed ($stage)"
