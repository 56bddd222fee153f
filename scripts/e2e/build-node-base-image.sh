#!/usr/bin/env bash
# Provides the Dockerfile's base image `node:24-bookworm-slim` locally, since no registry can be
# pulled from here: a debootstrap'ed Debian bookworm (minbase), the project's pinned Node 24 binary
# (node_modules/node, from `npm ci`) at /usr/local/bin/node, and npm, laid out like the official image.
# A real node:24-bookworm-slim already present (no nrc label) is left alone.
# Usage: scripts/e2e/build-node-base-image.sh [image-name]   (FORCE=1 rebuilds; DEBIAN_MIRROR=url)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
IMAGE="${1:-node:24-bookworm-slim}"
NODE_BIN="$REPO_ROOT/node_modules/node/bin/node"
[ -x "$NODE_BIN" ] || die "$NODE_BIN missing: run npm ci first"
NODE_VERSION="$("$NODE_BIN" --version)"
case "$NODE_VERSION" in v24.*) ;; *) die "node_modules/node is $NODE_VERSION, expected v24.x" ;; esac
if [ "${FORCE:-0}" != 1 ] && $DOCKER image inspect "$IMAGE" >/dev/null 2>&1; then
  have="$(image_label "$IMAGE" nrc.e2e.node-version)"
  if [ -z "$have" ]; then log "$IMAGE exists and is not ours: using it"; exit 0; fi
  if [ "$have" = "$NODE_VERSION" ]; then log "$IMAGE is up to date (node $NODE_VERSION)"; exit 0; fi
fi
command -v debootstrap >/dev/null || die "debootstrap missing: scripts/setup-host.sh installs it"
NPM_CLI="$(readlink -f "$(command -v npm)")"     # .../node_modules/npm/bin/npm-cli.js
NPM_DIR="$(dirname "$(dirname "$NPM_CLI")")"
[ -f "$NPM_DIR/package.json" ] || die "cannot locate npm's package directory (found $NPM_CLI)"

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
log "debootstrap bookworm (minbase) from ${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
# Slim like the official -slim images: no apt lists, caches, docs or man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/debootstrap
install -D -m 0755 "$NODE_BIN" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
# The official image's unprivileged user.
grep -q '^node:' "$rootfs/etc/group" || echo 'node:x:1000:' >>"$rootfs/etc/group"
grep -q '^node:' "$rootfs/etc/passwd" || echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$rootfs/etc/passwd"
mkdir -p "$rootfs/home/node" && chown 1000:1000 "$rootfs/home/node"
"$rootfs/usr/local/bin/node" -e 'process.exit(0)'
tar --numeric-owner -C "$rootfs" -cf "$work/rootfs.tar" .
$DOCKER import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
  --change 'CMD ["node"]' \
  --change "LABEL nrc.e2e.node-version=$NODE_VERSION" \
  "$work/rootfs.tar" "$IMAGE" >/dev/null
log "built $IMAGE (Debian bookworm minbase + node $NODE_VERSION + npm $("$NODE_BIN" -p "require('$NPM_DIR/package.json').version"))"
