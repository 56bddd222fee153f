#!/usr/bin/env bash
# Builds the distribution registry image locally (no image can be pulled here): FROM scratch with
# Debian's /usr/bin/docker-registry and the libraries it links. Rebuilt when Debian's version changes.
# Usage: scripts/e2e/build-registry-image.sh [image-name]   (FORCE=1 rebuilds)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
IMAGE="${1:-nrc-e2e/registry:local}"
BIN=/usr/bin/docker-registry
[ -x "$BIN" ] || die "$BIN missing: apt-get install docker-registry (scripts/setup-host.sh)"
VERSION="$(dpkg-query -W -f='${Version}' docker-registry)-r1"
if [ "${FORCE:-0}" != 1 ] && [ "$(image_label "$IMAGE" nrc.e2e.version)" = "$VERSION" ]; then
  log "$IMAGE is up to date ($VERSION)"; exit 0
fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
copy_with_libs "$BIN" "$rootfs"
mkdir -p "$rootfs/etc/docker/registry" "$rootfs/var/lib/registry" "$rootfs/tmp" "$rootfs/certs" "$rootfs/auth"
chmod 1777 "$rootfs/tmp"
cat > "$rootfs/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000   # REGISTRY_HTTP_ADDR overrides
  tls:
    certificate: /certs/server.crt
    key: /certs/server.key
auth:
  htpasswd:
    realm: nrc-e2e
    path: /auth/htpasswd
YAML
tar -C "$rootfs" -cf "$work/rootfs.tar" .
$DOCKER import \
  --change 'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]' \
  --change "LABEL nrc.e2e.version=$VERSION" \
  "$work/rootfs.tar" "$IMAGE" >/dev/null
log "built $IMAGE ($VERSION)"
