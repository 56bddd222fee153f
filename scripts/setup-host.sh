#!/usr/bin/env bash
# One-time (idempotent) host setup for the test suites: the Debian packages the e2e suite drives
# (Docker engine, containerd with CRI, the distribution registry, skopeo, htpasswd, openssl,
# debootstrap for the locally built base image), a running Docker engine, and the Go-built test
# tools (scripts/build-go-tools.sh).
# Needs root (or sudo). Safe to run again: installs only what is missing, starts dockerd only if down.
set -euo pipefail

log() { printf '[setup-host %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(docker.io docker-registry skopeo containerd apache2-utils openssl debootstrap ca-certificates tar gzip)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages already installed"
fi

docker_up() { $SUDO /usr/bin/docker version >/dev/null 2>&1; }
if docker_up; then
  log "dockerd already running"
else
  log "starting dockerd (log: /var/log/dockerd.log)"
  # No systemd on these machines: run it in the background, detached from this shell.
  $SUDO setsid nohup /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    if docker_up; then break; fi
    sleep 1
  done
  if ! docker_up; then
    log "dockerd did not come up within 60s; last log lines:"
    tail -n 30 /var/log/dockerd.log >&2 || true
    exit 1
  fi
  log "dockerd is up"
fi

# The Go-built test tools (oracles on the kubelet's and containerd's own code, containerd 2.x),
# from the pinned modules in testenv/, cached outside the clone by their go.sum.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
if command -v go >/dev/null 2>&1; then
  log "Go test tools: $(bash "$(dirname "$0")/build-go-tools.sh" | tail -n 1)"
else
  log "WARNING: no Go toolchain on PATH; the oracle suites need scripts/build-go-tools.sh"
  [ -z "${CI:-}" ] || exit 1
fi
