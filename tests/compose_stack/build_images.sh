#!/usr/bin/env bash
# Builds the runtime image of the compose stack without a registry: a Debian bookworm minbase root
# filesystem made by debootstrap with the packages the reference service needs (Python 3, psycopg2,
# Alembic with its `alembic` command, SQLAlchemy) and PostgreSQL 15 for the db service, plus what an app
# host needs to be a managed node of the collection (git, python3-requests for community.docker,
# python3-jmespath for the probes; the managed-node Molecule scenario runs one from it), imported with
# `docker import` into the engine DOCKER_HOST names (scripts/docker_env.sh starts the tests' own).
#
#   bash tests/compose_stack/build_images.sh            # ensure localhost/cws-runtime:bookworm exists
#   bash tests/compose_stack/build_images.sh --force    # rebuild from scratch (ignores every cache)
#
# Three speeds: the image already holds the wanted content key (nothing to do); the root filesystem
# tarball is in the cache (${CWS_IMAGE_CACHE:-~/.cache/cws-images}: import only); cold (debootstrap).
# The cache is an optimisation only: a missing tarball is rebuilt (kept uncompressed: gzip would save
# 300 MB but cost ~20 s per cold build). Prints timings on stderr.
# Measured on a 2-core machine: cold ~85 s (debootstrap 50-70 s, import ~13 s), cached tarball ~15 s,
# warm 0.1 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
IMAGE=${CWS_RUNTIME_IMAGE:-localhost/cws-runtime:bookworm}
SUITE=bookworm
# The Debian mirror this machine's apt uses (deb822 sources or sources.list), unless CWS_DEBIAN_MIRROR says.
apt_mirror() {  # a missing sources file is no error (the group's greps may find nothing)
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" {print $2}' || true
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; break}}' || true
  } | awk '!/-security/ {print; exit}'
}
MIRROR=${CWS_DEBIAN_MIRROR:-$(apt_mirror)}
PACKAGES=python3,python3-psycopg2,python3-alembic,alembic,python3-sqlalchemy,postgresql-15,ca-certificates,git,python3-requests,python3-jmespath
CACHE=${CWS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cws-images}
FORMAT_VERSION=1
force=0
[ "${1:-}" = "--force" ] && force=1

say() { echo "build_images: $*" >&2; }
die() { say "$*"; exit 2; }
trap 'say "failed at line $LINENO (exit $?)"' ERR
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }

command -v docker >/dev/null || die "docker is missing: run scripts/docker_env.sh first"
label_format='{{index .Config.Labels "cws.key"}}'

[ -n "$MIRROR" ] || die "no Debian mirror in this machine's apt sources: set CWS_DEBIAN_MIRROR"
key=$(printf '%s\n' "$FORMAT_VERSION" "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-16)
t0=$(now)

if [ "$force" = 0 ] && [ "$(docker image inspect --format "$label_format" "$IMAGE" 2>/dev/null)" = "$key" ]; then
  say "$IMAGE is current (key $key): warm, $(since "$t0") s"
  exit 0
fi

mkdir -p "$CACHE"
tarball="$CACHE/cws-runtime-$key.tar"
# Written under a temporary name and renamed when complete: a present tarball is a whole one.
if [ "$force" = 1 ] || [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing: scripts/system_packages.sh ensure containers"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  rm -f "$tarball"
  work=$(mktemp -d "${TMPDIR:-/tmp}/cws-rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  say "debootstrap $SUITE minbase with $PACKAGES (cold build)"
  t1=$(now)
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  say "debootstrap took $(since "$t1") s"
  # No cluster baked in (the db service makes its own in a volume); no package caches.
  rm -rf "$work/rootfs/var/lib/postgresql/15/main" "$work/rootfs/etc/postgresql/15/main" \
         "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/dev/"*
  t2=$(now)
  tar -C "$work/rootfs" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  say "root filesystem cached as $tarball ($(du -h "$tarball" | cut -f1), $(since "$t2") s)"
fi

t3=$(now)
docker import \
  --change "LABEL cws.key=$key" \
  --change "LABEL org.opencontainers.image.description=\"cleanwithsnapshot release compose stack runtime\"" \
  --change "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$IMAGE" >/dev/null
say "imported $IMAGE in $(since "$t3") s (total $(since "$t0") s)"
