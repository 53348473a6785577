# shellcheck shell=bash
# Sourced by the ansible-test runners (sanity.sh, sanity_matrix.sh, integration_targets.sh): ansible-test needs
# the collection at .../ansible_collections/<ns>/<name>/ as a real path (it resolves the working directory) and
# lists the files git knows there. `collection_copy LABEL` copies the files git knows (tracked, and untracked ones
# it does not ignore) into a private temporary tree, removed when the script exits, makes it a git repository of
# its own so ansible-test lists exactly these files, and changes into it. A private copy per run, so two runs at
# once never pull the tree from under each other.
collection_copy() {
  local label=$1 dest
  collection_work=$(mktemp -d "${TMPDIR:-/tmp}/cws-$label.XXXXXX")
  trap 'rm -rf "$collection_work"' EXIT
  dest="$collection_work/ansible_collections/cleanwithsnapshot/release"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar -c --null -T - | tar -x -C "$dest"
  cd "$dest"
  git init -q && git add -A && git -c user.name="$label" -c user.email="$label@localhost" commit -q -m "$label"
}
