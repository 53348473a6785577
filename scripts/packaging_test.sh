#!/usr/bin/env bash
# Packaging test: the collection as users get it.
#   1. `ansible-galaxy collection build` of the files git knows (tracked, and untracked but not ignored:
#      what a fresh clone plus work in progress holds) into .build/dist, with galaxy.yml's build_ignore;
#   2. the tarball's content: no test harness, reference service, virtualenv, cache or artifacts;
#      the files a user needs are there;
#   3. installed into a clean, empty collections path (a temp dir) and verified against its checksums;
#   4. playbooks/verify.yml run by its FQCN (cleanwithsnapshot.release.verify) from the installed copy,
#      with ANSIBLE_COLLECTIONS_PATH pointing ONLY at that path, against a reference stack started here
#      (tests/harness/refstack.py), and the verdict compared with the one from the checkout: both GO,
#      with the same outcome for every criterion;
#   5. the execution environment definition: `ansible-builder create` (no container engine needed),
#      ansible-builder's introspection of the installed collection, and bindep.txt parsed by bindep.
# Usage: bash scripts/packaging_test.sh [--no-ee] [--keep]
set -uo pipefail
# The caller's collections path (make exports the checkout's) would make ansible-galaxy find the collection
# already installed and skip the clean install: every step below names its path itself.
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
run_ee=1
keep=0
for arg in "$@"; do
  case "$arg" in
    --no-ee) run_ee=0 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--no-ee] [--keep]" >&2; exit 2 ;;
  esac
done
venv_bin="$root/.venv/bin"
[ -x "$venv_bin/ansible-galaxy" ] || { echo "packaging_test: .venv is missing: run 'make setup' first" >&2; exit 2; }
export PATH="$venv_bin:$PATH"
started_all=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/cws-packaging.XXXXXX")
state="$work/refstack.json"
stack_started=0
cleanup() {
  if [ "$stack_started" = 1 ]; then
    "$venv_bin/python" tests/harness/refstack.py stop --state "$state" >/dev/null 2>&1 || true
  fi
  if [ "$keep" = 1 ]; then echo "packaging_test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
failures=()
fail() { echo "packaging_test: FAIL: $*" >&2; failures+=("$1"); }
step() { printf '=== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
step "1. build the collection tarball"
src="$work/src"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
done | tar -c --null -T - | tar -x -C "$src"
version=$("$venv_bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' galaxy.yml)
mkdir -p .build/dist
tarball="$root/.build/dist/cleanwithsnapshot-release-$version.tar.gz"
if ! (cd "$src" && ansible-galaxy collection build --force --output-path "$root/.build/dist" . >"$work/build.log" 2>&1); then
  cat "$work/build.log" >&2
  echo "packaging_test: ansible-galaxy collection build failed" >&2
  exit 1
fi
# The execution environment copies the tarball under a name without the version (execution-environment.yml).
cp "$tarball" "$root/.build/dist/cleanwithsnapshot-release.tar.gz"
echo "built $tarball ($(du -k "$tarball" | cut -f1) KiB)"

# ---------------------------------------------------------------------------------------------
step "2. tarball content"
tar -tzf "$tarball" | sed 's#^\./##' | sort >"$work/content.txt"
echo "$(wc -l <"$work/content.txt") entries"
forbidden='^(tests/harness(/|$)|tests/reference_service(/|$)|tests/output(/|$)|\.venv[^/]*(/|$)|\.cache(/|$)|\.build(/|$)|artifacts(/|$)|\.git(/|$)|\.pytest_cache(/|$)|bench(/|$)|scripts(/|$)|\.ci(/|$))|(^|/)__pycache__(/|$)|\.pyc$|\.tar\.gz$'
if grep -E "$forbidden" "$work/content.txt" >"$work/forbidden.txt"; then
  fail "content" "the tarball holds files it must not ($(wc -l <"$work/forbidden.txt")), first ones:"
  head -20 "$work/forbidden.txt" >&2
fi
# Test-only material that is harmless to ship but has no use in the collection: reported, not failed.
if grep -qE '^tests/compose_stack/' "$work/content.txt"; then
  echo "packaging_test: note: tests/compose_stack ($(grep -cE '^tests/compose_stack/.' "$work/content.txt") entries) is in the tarball; galaxy.yml build_ignore could list it"
fi
for need in MANIFEST.json FILES.json README.md meta/runtime.yml meta/execution-environment.yml requirements.txt bindep.txt \
    plugins/action/gate.py plugins/modules/gate.py plugins/modules/readiness_probe.py plugins/module_utils/check_result.py \
    roles/verify/meta/argument_specs.yml roles/gate/tasks/main.yml playbooks/verify.yml playbooks/release.yml \
    inventories/local/hosts.yml docs/criteria.md docs/reference/README.md; do
  grep -qxF "$need" "$work/content.txt" || fail "content" "the tarball lacks $need"
done

# ---------------------------------------------------------------------------------------------
step "3. install into a clean collections path"
clean="$work/collections"
mkdir -p "$clean"
if ! ansible-galaxy collection install --offline --no-deps -p "$clean" "$tarball" >"$work/install.log" 2>&1; then
  cat "$work/install.log" >&2
  fail "install" "ansible-galaxy collection install failed"
fi
installed="$clean/ansible_collections/cleanwithsnapshot/release"
found=$(cd "$clean/ansible_collections" && find . -mindepth 2 -maxdepth 2 -type d | sort | tr '\n' ' ')
[ "$found" = "./cleanwithsnapshot/release " ] || fail "install" "the clean path holds more than the collection: $found"
if ! ANSIBLE_COLLECTIONS_PATH="$clean" ansible-galaxy collection verify --offline -p "$clean" cleanwithsnapshot.release >"$work/verify-files.log" 2>&1; then
  cat "$work/verify-files.log" >&2
  fail "install" "ansible-galaxy collection verify found modified or missing files"
fi

# ---------------------------------------------------------------------------------------------
step "4. verify.yml from the installed collection vs from the checkout, against a reference stack"
t0=$(date +%s)
if "$venv_bin/python" tests/harness/refstack.py start --state "$state" --name cws_pkg >"$work/refstack.log" 2>&1; then
  stack_started=1
  echo "reference stack up in $(( $(date +%s) - t0 )) s"
else
  cat "$work/refstack.log" >&2
  fail "stack" "the reference stack did not start"
fi

run_verify() {  # label, collections path, cwd, playbook, inventory
  local label=$1 colls=$2 dir=$3 playbook=$4 inventory=$5 t
  t=$(date +%s)
  mkdir -p "$work/artifacts-$label" "$work/home-$label"
  # HOME of its own: nothing from ~/.ansible (collections, config) can leak in.
  (cd "$dir" && env HOME="$work/home-$label" ANSIBLE_COLLECTIONS_PATH="$colls" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
      CWS_LOCAL_STACK="$work/local-stack.json" CWS_ARTIFACTS_DIR="$work/artifacts-$label" ANSIBLE_NOCOLOR=1 \
      ansible-playbook "$playbook" -i "$inventory") >"$work/verify-$label.log" 2>&1
  local rc=$?
  echo "$label: ansible-playbook exit $rc in $(( $(date +%s) - t )) s (log: verify-$label.log)"
  return $rc
}
if [ "$stack_started" = 1 ]; then
  "$venv_bin/python" tests/harness/local_inventory.py --state "$state" --out "$work/local-stack.json" || fail "stack" "local_inventory.py failed"
  # An empty working directory: no ansible.cfg of the checkout is read for the installed run.
  mkdir -p "$work/cwd" "$work/home-list"
  # With that environment, the only copy of the collection Ansible can find is the installed one.
  listed=$(cd "$work/cwd" && env HOME="$work/home-list" ANSIBLE_COLLECTIONS_PATH="$clean" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    ansible-galaxy collection list cleanwithsnapshot.release 2>&1 | sed -n 's/^# //p')
  [ "$listed" = "$clean/ansible_collections" ] || fail "installed-run" "the collection is found elsewhere than in the clean path: $listed"
  run_verify installed "$clean" "$work/cwd" cleanwithsnapshot.release.verify "$installed/inventories/local" \
    || fail "installed-run" "verify.yml from the installed collection did not pass"
  # A new session on a freshly started service: each run keeps its own ledger (its own HOME), and the installed run
  # spent most of the service's rate limit (30 requests a minute, as the real service allows).
  "$venv_bin/python" tests/harness/refstack.py restart --state "$state" >/dev/null || fail "stack" "the stack did not restart"
  run_verify checkout "$root/.build/collections" "$root/playbooks" verify.yml local \
    || fail "checkout-run" "verify.yml from the checkout did not pass"
  "$venv_bin/python" - "$work/artifacts-installed/gonogo.json" "$work/artifacts-checkout/gonogo.json" <<'PYEOF' || fail "verdict" "the verdicts differ"
import json
import sys


def load(path):
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as exc:
        sys.exit("packaging_test: no readable report %s: %s" % (path, exc))
    outcomes = sorted((c["criterion"], c["outcome"]) for c in report["criteria"])
    return report["verdict"], outcomes


installed, checkout = load(sys.argv[1]), load(sys.argv[2])
print("installed: %s (%d criteria); checkout: %s (%d criteria)" % (installed[0], len(installed[1]), checkout[0], len(checkout[1])))
if installed[0] != "GO" or checkout[0] != "GO":
    sys.exit("packaging_test: expected GO from both runs")
if installed != checkout:
    diff = sorted(set(installed[1]) ^ set(checkout[1]))
    sys.exit("packaging_test: the criteria outcomes differ: %s" % diff)
print("same verdict and the same outcome for every criterion")
PYEOF
fi

# ---------------------------------------------------------------------------------------------
if [ "$run_ee" = 1 ]; then
  step "5. execution environment definition"
  tools="$root/.cache/venv-ee-tools"
  if [ ! -x "$tools/bin/ansible-builder" ] || [ ! -x "$tools/bin/bindep" ]; then
    if ! { "$venv_bin/python" -m venv "$tools" && "$tools/bin/python" -m pip install -q --disable-pip-version-check \
        ansible-builder==3.2.0 bindep==2.14.0 >"$work/ee-tools.log" 2>&1; }; then
      cat "$work/ee-tools.log" >&2
      fail "ee" "could not install ansible-builder and bindep"
    fi
  fi
  if [ -x "$tools/bin/ansible-builder" ]; then
    ctx="$work/ee-context"
    # ansible-builder names its output after the container runtime it finds (Dockerfile where only a docker
    # CLI is on PATH): the name is given, so the result does not depend on what this machine has.
    if "$tools/bin/ansible-builder" create -f execution-environment.yml -c "$ctx" --output-filename Containerfile >"$work/ee.log" 2>&1; then
      grep -q '^FROM ' "$ctx/Containerfile" || fail "ee" "ansible-builder wrote no Containerfile"
      [ -f "$ctx/_build/collections/cleanwithsnapshot-release.tar.gz" ] || fail "ee" "the collection tarball is not in the build context"
      # What the image build's introspection step will collect from the installed collection.
      "$tools/bin/python" "$ctx/_build/scripts/introspect.py" introspect "$clean" >"$work/introspect.txt" 2>&1 \
        || fail "ee" "introspection failed: $(cat "$work/introspect.txt")"
      for want in jmespath psycopg2-binary 'postgresql-client \[platform:dpkg\]' 'postgresql \[platform:rpm\]'; do
        grep -q "$want" "$work/introspect.txt" || fail "ee" "introspection did not find $want"
      done
      echo "ansible-builder create: ok; introspection: $(grep -c 'from collection cleanwithsnapshot.release' "$work/introspect.txt") requirements"
    else
      cat "$work/ee.log" >&2
      fail "ee" "ansible-builder create failed"
    fi
    "$tools/bin/bindep" -f bindep.txt -l newline >"$work/bindep.txt" 2>&1 || fail "ee" "bindep could not read bindep.txt"
  fi
fi

echo "packaging_test: $(( $(date +%s) - started_all )) s in all"
if [ ${#failures[@]} -gt 0 ]; then
  echo "packaging_test: FAILED: ${failures[*]}" >&2
  exit 1
fi
echo "packaging_test: passed"
