#!/usr/bin/env bash
# Set-up 1/2 (idempotent), in the order CI installs: `apt-get update`, the Debian packages the
# suites drive (Docker engine, containerd with CRI, the distribution registry, skopeo, htpasswd,
# openssl, debootstrap for the locally built base image), a running Docker engine, then the npm
# packages (`npm ci`, which brings the project's Node 24). Set-up 2/2 is scripts/build-go-tools.sh.
# Needs root (or sudo) for the Debian part. Safe to run again: installs only what is missing,
# starts dockerd only if down. NRC_SKIP_NPM=1 leaves node_modules alone.
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
log "apt-get update"
$SUDO apt-get update -qq
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
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

# The npm packages, after the Debian ones (CI's order); the Go-built tools come after these.
if [ "${NRC_SKIP_NPM:-}" != 1 ]; then
  log "npm ci"
  (cd "$(dirname "$0")/.." && npm ci --no-audit --no-fund)
fi
log "done; next: bash scripts/build-go-tools.sh (set-up 2/2)"
