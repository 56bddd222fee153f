# Shared bits of the e2e image scripts (sourced, not run).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=docker
log() { printf '[%s %s] %s\n' "$(basename "$0")" "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }
image_label() { $DOCKER image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
# Copies an executable and the shared libraries `ldd` lists into a rootfs, at the same paths.
copy_with_libs() {
  local bin="$1" rootfs="$2" lib
  install -D -m 0755 "$bin" "$rootfs$bin"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
}
