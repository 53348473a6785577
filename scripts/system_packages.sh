#!/usr/bin/env bash
# The one list of the system (Debian) packages that this project's scripts and tests need, by feature,
# each with how to tell it is present. Every script that needs one asks here; nothing else installs a
# system package.
#
#   bash scripts/system_packages.sh ensure FEATURE...   # install what is missing (root + apt-get), else fail
#   bash scripts/system_packages.sh check FEATURE...    # exit 1 with one line naming what is missing
#   bash scripts/system_packages.sh list FEATURE...     # the package names
#   bash scripts/system_packages.sh remove FEATURE...   # apt-get remove them (to rehearse a fresh machine)
#
# FEATURE is a name of the table below, or `all`. Packages are installed without their recommended
# packages, as a fresh machine of this kind has them: whatever a feature needs is listed here by name
# (dockerd runs iptables, for example, which it only recommends).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# feature      package             probe (cmd:NAME on PATH or in sbin, file:PATH[,PATH], or pg-server)
table() {
  cat <<'EOF'
postgres       postgresql          pg-server
postgres       postgresql-client   cmd:pg_dump
containers     docker.io           cmd:dockerd
containers     iptables            cmd:iptables
containers     debootstrap         cmd:debootstrap
monitoring     prometheus          cmd:prometheus
monitoring     prometheus-alertmanager cmd:prometheus-alertmanager
monitoring     caddy               cmd:caddy
EOF
}

say() { echo "system_packages: $*" >&2; }

present() {  # probe
  local probe=$1 path
  case "$probe" in
    cmd:*)
      local name=${probe#cmd:}
      command -v "$name" >/dev/null 2>&1 || [ -x "/usr/sbin/$name" ] || [ -x "/sbin/$name" ]
      ;;
    file:*)
      local IFS=,
      for path in ${probe#file:}; do
        [ -x "$path" ] && return 0
      done
      return 1
      ;;
    pg-server) python3 "$root/tests/harness/pgcluster.py" bindir >/dev/null 2>&1 ;;
    *) say "unknown probe '$probe' in the table"; exit 2 ;;
  esac
}

known=$(table | awk '{print $1}' | sort -u | tr '\n' ' ')

validate() {  # features...
  for feature in "$@"; do
    case " $known all " in
      *" $feature "*) ;;
      *) say "unknown feature '$feature' (known: ${known}all)"; exit 2 ;;
    esac
  done
}

rows() {  # features... -> "package probe" lines
  local features=" $* "
  table | while read -r feature package probe; do
    case "$features" in
      *" all "*|*" $feature "*) echo "$package $probe" ;;
    esac
  done
}

missing() {  # features... -> the packages not present, one line
  local out=()
  while read -r package probe; do
    present "$probe" || out+=("$package")
  done < <(rows "$@")
  echo "${out[*]:-}"
}

command=${1:-}
[ $# -ge 2 ] || { echo "usage: $0 ensure|check|list|remove FEATURE... (features: ${known}all)" >&2; exit 2; }
shift
validate "$@"
case "$command" in
  list) rows "$@" | awk '{print $1}' ;;
  check)
    need=$(missing "$@")
    [ -z "$need" ] || { say "missing Debian packages for $*: $need (as root: apt-get install --no-install-recommends $need)"; exit 1; }
    ;;
  ensure)
    need=$(missing "$@")
    [ -n "$need" ] || exit 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      say "missing Debian packages for $*: $need (as root: apt-get install --no-install-recommends $need)"
      exit 1
    fi
    say "installing $need"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086  # one word per package
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need; } >&2 \
      || { say "apt-get could not install: $need"; exit 1; }
    still=$(missing "$@")
    [ -z "$still" ] || { say "installed, but still not found: $still"; exit 1; }
    ;;
  remove)
    [ "$(id -u)" = 0 ] || { say "remove needs root"; exit 1; }
    # shellcheck disable=SC2046  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq $(rows "$@" | awk '{print $1}') >&2
    DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq >&2
    ;;
  *) echo "usage: $0 ensure|check|list|remove FEATURE..." >&2; exit 2 ;;
esac
