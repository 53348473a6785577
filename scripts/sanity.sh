#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/<ns>/<name>/ as a real path
# (it resolves the working directory), so the files git knows are copied there first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# A private copy per run, so two runs at once never pull the tree from under each other.
work=$(mktemp -d "${TMPDIR:-/tmp}/cws-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/cleanwithsnapshot/release"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"
done | tar -c --null -T - | tar -x -C "$dest"
cd "$dest"
# A git repository of its own, so ansible-test lists exactly these files.
git init -q && git add -A && git -c user.name=sanity -c user.email=sanity@localhost commit -q -m sanity
pyver=$("$root/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$root/.venv/bin/ansible-test" sanity --venv --python "$pyver" --color no ${SANITY_ARGS:-}
