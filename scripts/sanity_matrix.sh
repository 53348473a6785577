#!/usr/bin/env bash
# The second sanity matrix: ansible-test sanity with ansible-core 2.21 on Python 3.12, in a virtualenv of
# its own (.venv-2.21, pinned by constraints-2.21.txt), next to scripts/sanity.sh (ansible-core 2.19,
# Python 3.11, .venv). tests/sanity/ignore-2.21.txt stays empty: a finding is fixed, never ignored.
#   bash scripts/sanity_matrix.sh                  # every sanity test on every file
#   SANITY_ARGS="--test pep8 plugins/modules/gate.py" bash scripts/sanity_matrix.sh
#   PYTHON312=/path/to/python3.12 bash scripts/sanity_matrix.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv-2.21"
constraints="$root/constraints-2.21.txt"
pyver=3.12

die() { echo "sanity_matrix: $*" >&2; exit 2; }

# Python 3.12: PYTHON312, then pyenv's newest 3.12, then python3.12 on PATH; each must really run.
find_python() {
  local candidates=() c
  [ -n "${PYTHON312:-}" ] && candidates+=("$PYTHON312")
  local proot=""
  if command -v pyenv >/dev/null 2>&1; then
    proot=$(pyenv root 2>/dev/null || true)
  fi
  # pyenv installed but not on PATH (a non-interactive shell): its usual home.
  [ -n "$proot" ] || proot=${PYENV_ROOT:-$HOME/.pyenv}
  if [ -d "$proot/versions" ]; then
    while IFS= read -r c; do
      candidates+=("$c/bin/python3.12")
    done < <(find "$proot/versions" -mindepth 1 -maxdepth 1 -name '3.12.*' 2>/dev/null | sort -t. -k3 -n -r)
  fi
  command -v python3.12 >/dev/null 2>&1 && candidates+=("$(command -v python3.12)")
  for c in "${candidates[@]}"; do
    if [ -x "$c" ] && "$c" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
python312=$(find_python) || die "Python 3.12 with venv/ensurepip not found (tried PYTHON312, \$(pyenv root) or \$PYENV_ROOT or ~/.pyenv /versions/3.12.*, python3.12 on PATH). Install it (e.g. 'pyenv install 3.12') or set PYTHON312=/path/to/python3.12."

# The virtualenv, rebuilt when the constraints change.
stamp="$venv/.constraints-stamp"
want=$(sha256sum "$constraints" | cut -d' ' -f1)
if [ ! -x "$venv/bin/ansible-test" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "sanity_matrix: creating $venv with $python312"
  rm -rf "$venv"
  "$python312" -m venv "$venv"
  # Not part of the repository: git (and scripts/sanity.sh's file list) must never see it.
  echo '*' > "$venv/.gitignore"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r <(grep -E '^[A-Za-z]' "$constraints") -c "$constraints"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import ansible, sys; sys.exit(0 if ansible.__version__.startswith("2.21.") else 1)' \
  || die "$venv does not hold ansible-core 2.21 (found $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)'))"

# ansible-test downloads get-pip from a host this network cannot reach; scripts/bootstrap.sh puts a
# stand-in in place (get_pip_25_2.py for core 2.21).
getpip="$HOME/.ansible/test/cache/get_pip_25_2.py"
[ -f "$getpip" ] || { mkdir -p "$(dirname "$getpip")"; cp scripts/get_pip_standin.py "$getpip"; }

# shellcheck source=scripts/collection_copy.sh
. scripts/collection_copy.sh
collection_copy sanity-2.21
[ -s tests/sanity/ignore-2.21.txt ] && die "tests/sanity/ignore-2.21.txt is not empty: fix the findings instead of ignoring them"
echo "sanity_matrix: ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)') on Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
# shellcheck disable=SC2086
"$venv/bin/ansible-test" sanity --venv --python "$pyver" --color no ${SANITY_ARGS:-}
