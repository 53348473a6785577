#!/usr/bin/env bash
# A Docker-compatible container engine for the release scenario: podman (with runc), its API socket,
# debootstrap (to build images without a registry) and Docker Compose v1 (Debian's docker-compose).
#
#   eval "$(bash scripts/podman_env.sh)"        # start (or reuse) the service, export DOCKER_HOST etc.
#   bash scripts/podman_env.sh --host-only      # print only the DOCKER_HOST value
#   bash scripts/podman_env.sh stop             # stop the API service this script started
#
# Installs the Debian packages when they are missing and this runs as root with apt-get
# (scripts/system_packages.sh); otherwise says in one line which packages are missing. Writes containers.conf under .cache/podman (runc, capped
# rlimits, cgroupfs, file events logger: the settings this kind of machine needs) and starts
# `podman system service` on .cache/podman/podman.sock. Everything but the export lines goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${CWS_PODMAN_DIR:-$root/.cache/podman}
sock="$state_dir/podman.sock"
conf="$state_dir/containers.conf"
pidfile="$state_dir/service.pid"
log="$state_dir/service.log"
mode=exports
case "${1:-}" in
  "") ;;
  --host-only) mode=host ;;
  stop) mode=stop ;;
  *) echo "usage: $0 [--host-only|stop]" >&2; exit 2 ;;
esac

say() { echo "podman_env: $*" >&2; }
die() { say "$*"; exit 2; }

if [ "$mode" = stop ]; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" && say "stopped the API service (pid $(cat "$pidfile"))"
  else
    say "no API service of ours is running"
  fi
  rm -f "$pidfile"
  exit 0
fi

# 1. Packages: the one list in scripts/system_packages.sh (netavark needs iptables, for one).
bash "$root/scripts/system_packages.sh" ensure containers || die "the container packages are missing (above)"

# 2. containers.conf (crun fails on this cgroup layout; hard nofile is 20000 without CAP_SYS_RESOURCE).
mkdir -p "$state_dir"
cat > "$conf.tmp" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$conf.tmp" "$conf"
export CONTAINERS_CONF="$conf"

# 3. The API service, reused when it already answers.
ping() {
  python3 - "$sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
    sys.exit(0 if b" 200 " in s.recv(64) else 1)
except OSError:
    sys.exit(1)
EOF
}
if ! ping; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" || true
    sleep 1
  fi
  rm -f "$sock"
  setsid podman system service --time=0 "unix://$sock" >"$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 100); do
    ping && break
    sleep 0.1
  done
  ping || die "podman system service did not answer on $sock (see $log)"
  say "API service started (pid $(cat "$pidfile")) on unix://$sock"
fi

if [ "$mode" = host ]; then
  echo "unix://$sock"
else
  echo "export DOCKER_HOST=unix://$sock"
  echo "export CONTAINERS_CONF=$conf"
fi
