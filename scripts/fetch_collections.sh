#!/usr/bin/env bash
# Installs the collections that awx/requirements.yml names into .build/collections, taken from the
# `ansible` package on PyPI (Ansible Galaxy is not reachable from this network; with Galaxy,
# `ansible-galaxy collection install -r awx/requirements.yml` does the same job).
#
#   bash scripts/fetch_collections.sh [REQUIREMENTS_YML]
#
# CWS_COLLECTIONS_DEST chooses the collections path (default .build/collections); the managed-node Molecule
# scenario puts what only its test tooling needs (molecule/managed/requirements.yml) beside it.
# Idempotent: the wheel is downloaded once into .cache/collections/, and a collection already
# installed at the pinned version is left alone. Only ansible_collections/<ns>/<name>/ of each
# named collection is extracted; the rest of the package is never installed.
# ANSIBLE_PACKAGE_VERSION chooses the `ansible` release (default 12.3.0, whose ansible-core is 2.19);
# the script fails when that release holds a different version of a collection than the pin.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
requirements=${1:-awx/requirements.yml}
package_version=${ANSIBLE_PACKAGE_VERSION:-12.3.0}
cache_dir="$root/.cache/collections"
dest_root="${CWS_COLLECTIONS_DEST:-$root/.build/collections}"

die() { echo "fetch_collections: $*" >&2; exit 2; }

if [ -x "$root/.venv/bin/python" ]; then PY="$root/.venv/bin/python"; else PY=${PYTHON:-python3}; fi
"$PY" -c 'import yaml' 2>/dev/null || die "$PY has no PyYAML: run 'make setup' first."
[ -f "$requirements" ] || die "requirements file not found: $requirements"

wheel="$cache_dir/ansible-${package_version}-py3-none-any.whl"
if [ ! -s "$wheel" ]; then
  mkdir -p "$cache_dir"
  tmp=$(mktemp -d "$cache_dir/download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch_collections: downloading ansible==$package_version (no dependencies) from PyPI"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "ansible==$package_version" -d "$tmp" || die "could not download ansible==$package_version"
  mv "$tmp/ansible-${package_version}-py3-none-any.whl" "$wheel"
fi

"$PY" - "$wheel" "$requirements" "$dest_root" <<'PYEOF'
import json
import os
import shutil
import sys
import tempfile
import zipfile

import yaml

wheel, requirements, dest_root = sys.argv[1:4]


def fail(msg):
    sys.stderr.write("fetch_collections: %s\n" % msg)
    sys.exit(2)


with open(requirements, encoding="utf-8") as handle:
    wanted = (yaml.safe_load(handle) or {}).get("collections") or []
if not wanted:
    fail("%s lists no collections" % requirements)

with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    for entry in wanted:
        if isinstance(entry, str):
            entry = {"name": entry}
        fqcn = entry.get("name", "")
        pin = str(entry.get("version") or "").strip()
        parts = fqcn.split(".")
        if len(parts) != 2 or not all(p.isidentifier() for p in parts):
            fail("%s: %r is not a collection name (namespace.name)" % (requirements, fqcn))
        namespace, name = parts
        dest = os.path.join(dest_root, "ansible_collections", namespace, name)
        manifest = os.path.join(dest, "MANIFEST.json")
        if pin and os.path.isfile(manifest):
            with open(manifest, encoding="utf-8") as handle:
                have = json.load(handle)["collection_info"]["version"]
            if have == pin:
                print("fetch_collections: %s %s already in place" % (fqcn, have))
                continue
        prefix = "ansible_collections/%s/%s/" % (namespace, name)
        members = [n for n in names if n.startswith(prefix)]
        if not members:
            fail("%s is not in %s" % (fqcn, os.path.basename(wheel)))
        found = json.loads(archive.read(prefix + "MANIFEST.json"))["collection_info"]["version"]
        if pin and found != pin:
            fail("%s holds %s %s, but %s pins %s: choose another ANSIBLE_PACKAGE_VERSION or change the pin"
                 % (os.path.basename(wheel), fqcn, found, requirements, pin))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".%s.%s." % (namespace, name), dir=os.path.dirname(dest))
        try:
            for member in members:
                rel = member[len(prefix):]
                if not rel or rel.endswith("/"):
                    continue
                if os.path.isabs(rel) or ".." in rel.split("/"):
                    fail("refusing the archive member %r" % member)
                target = os.path.join(staging, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            os.chmod(staging, 0o755)
            old = None
            if os.path.lexists(dest):
                old = dest + ".old"
                shutil.rmtree(old, ignore_errors=True)
                os.rename(dest, old)
            os.rename(staging, dest)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        print("fetch_collections: %s %s installed into %s" % (fqcn, found, dest))
PYEOF
