#!/usr/bin/env bash
# Packages the Helm chart, versioned with the app:
#
#   bash scripts/helm-package.sh [OUT_DIR]     # default dist/charts; prints the .tgz path
#   npm run chart:package
#
# Refuses a chart whose version or appVersion is not package.json's version, or that
# `helm lint --strict` or `npm run manifests -- --check` (daemonset/ generated from the chart)
# refuses. helm is the one scripts/build-go-tools.sh builds (testenv/helm); HELM=/path overrides.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
chart="$repo/charts/node-registry-credentials"
out=${1:-$repo/dist/charts}
log() { printf '[helm-package] %s\n' "$*" >&2; }

helm=${HELM:-$(bash "$repo/scripts/build-go-tools.sh" | tail -1)/helm}
[ -x "$helm" ] || { log "error: no helm at $helm"; exit 1; }

version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
chart_version=$(sed -n 's/^version: *//p' "$chart/Chart.yaml")
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")
if [ "$chart_version" != "$version" ] || [ "$app_version" != "$version" ]; then
  log "error: Chart.yaml version $chart_version / appVersion $app_version, package.json $version: set both to $version"
  exit 1
fi

"$helm" lint --strict "$chart" >&2
(cd "$repo" && HELM_BIN="$helm" npx tsx scripts/manifests.ts --check) >&2
mkdir -p "$out"
"$helm" package "$chart" --destination "$out" >&2
printf '%s\n' "$out/node-registry-credentials-$version.tgz"
