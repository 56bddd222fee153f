#!/usr/bin/env bash
# Builds every Go tool the tests need (testenv/*/tools.txt) into a cache OUTSIDE the clone and
# prints the bin directory as the LAST line of stdout:
#
#   bin=$(bash scripts/build-go-tools.sh | tail -1)
#   bash scripts/build-go-tools.sh --print-dir     # the directory only, builds nothing
#
# Cache (${NRC_GO_CACHE:-/var/cache/node-registry-credentials/go-tools}), keyed PER MODULE so that
# a change in one testenv module rebuilds only that module:
#   modules/<module>/<mkey>/bin   one module's tools; <mkey> = first 16 hex digits of a sha256 over
#                                 this script, every file of that module dir except *.md (go.mod,
#                                 go.sum, tools.txt, wrapper sources), the files of the module dirs
#                                 its go.mod replaces with ../<dir>, and the Go version/OS/arch;
#   <key>/bin                     the bin dir the tests use: hard links to every module's tools;
#                                 <key> = the same digits over the list of "<module> <mkey>".
# Each entry is used only when its .complete marker exists; each is built in a temporary
# directory renamed into place when done, so an interrupted build is never taken as complete.
# NRC_GO_TOOLS_DIR=DIR: use the binaries in DIR (checked to exist), build nothing.
# Per-tool timings go to stderr. Modules and build cache: Go's defaults (GOMODCACHE, GOCACHE).
# See testenv/README.md.
set -euo pipefail

script_path=$(readlink -f "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$script_path")/.." && pwd)
testenv="$repo/testenv"
cache_root=${NRC_GO_CACHE:-/var/cache/node-registry-credentials/go-tools}
keep=${NRC_GO_CACHE_KEEP:-3}

log() { printf '[go-tools] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: scripts/build-go-tools.sh [--print-dir | --list | --keys | --help]
  (no option)   build what is missing, print the bin directory as the last stdout line
  --print-dir   print the bin directory that would be used; build nothing
  --list        print "<module dir> <binary> <package>" for every tool; build nothing
  --keys        print "<module> <module key> <module entry>" per module; build nothing
env: NRC_GO_CACHE (cache root), NRC_GO_TOOLS_DIR (prebuilt bin dir: build nothing),
     NRC_GO_CACHE_KEEP (complete cache entries kept, default 3), GO (go binary)
EOF
}

mode=build
case "${1:-}" in
  "") ;;
  --print-dir) mode=print ;;
  --list) mode=list ;;
  --keys) mode=keys ;;
  -h|--help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac

GO=${GO:-$(command -v go || true)}
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || die "no go binary (set GO=/path/to/go or put go on PATH)"

# Every module dir with a tools.txt, in a stable order.
modules=()
while IFS= read -r f; do modules+=("$(dirname "$f")"); done \
  < <(find "$testenv" -mindepth 2 -maxdepth 2 -name tools.txt | LC_ALL=C sort)
[ ${#modules[@]} -gt 0 ] || die "no testenv/*/tools.txt"

# tool_lines MODDIR: the non-comment lines of MODDIR/tools.txt
tool_lines() { grep -v -E '^[[:space:]]*(#|$)' "$1/tools.txt" || true; }

# split_line LINE: fields (quotes as xargs understands them) into the array `fields`
split_line() {
  fields=()
  mapfile -d '' -t fields < <(printf '%s\n' "$1" | xargs printf '%s\0')
}

all_tools() {  # prints "<moddir>\t<name>\t<pkg>"
  local m line
  for m in "${modules[@]}"; do
    while IFS= read -r line; do
      split_line "$line"
      [ ${#fields[@]} -ge 2 ] || die "$m/tools.txt: need '<binary> <package>': $line"
      printf '%s\t%s\t%s\n' "${m#"$repo"/}" "${fields[0]}" "${fields[1]}"
    done < <(tool_lines "$m")
  done
}

if [ "$mode" = list ]; then
  all_tools | tr '\t' ' '
  exit 0
fi

# One bin dir for all modules: a binary name may come from one module only.
dups=$(all_tools | cut -f2 | LC_ALL=C sort | uniq -d | tr '\n' ' ')
[ -z "$dups" ] || die "binary names in more than one tools.txt: $dups"


if [ -n "${NRC_GO_TOOLS_DIR:-}" ]; then
  missing=()
  while IFS=$'\t' read -r _ name _; do
    [ -x "$NRC_GO_TOOLS_DIR/$name" ] || missing+=("$name")
  done < <(all_tools)
  if [ "$mode" = build ] && [ ${#missing[@]} -gt 0 ]; then
    die "NRC_GO_TOOLS_DIR=$NRC_GO_TOOLS_DIR lacks: ${missing[*]}"
  fi
  [ "$mode" = build ] && log "using prebuilt tools in NRC_GO_TOOLS_DIR=$NRC_GO_TOOLS_DIR"
  printf '%s\n' "$NRC_GO_TOOLS_DIR"
  exit 0
fi

gover=$(GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION GOOS GOARCH | tr '\n' ' ')
script_sum=$(sha256sum < "$script_path" | cut -d' ' -f1)

# module_key MODDIR: what decides this module's binaries (see the header).
module_key() {
  local m=$1 dirs=("$1") dep
  while IFS= read -r dep; do dirs+=("$testenv/$dep"); done \
    < <(sed -n 's#^.*=>[[:space:]]*\.\./\([A-Za-z0-9_.-]*\)[[:space:]]*$#\1#p' "$m/go.mod" 2>/dev/null | LC_ALL=C sort -u)
  {
    printf 'script %s\ngo %s\n' "$script_sum" "$gover"
    local d
    for d in "${dirs[@]}"; do
      (cd "$repo" && find "${d#"$repo"/}" -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    done
  } | sha256sum | cut -c1-16
}

declare -A mkey
keys_list=""
for m in "${modules[@]}"; do
  mkey[$m]=$(module_key "$m")
  keys_list+="$(basename "$m") ${mkey[$m]}"$'\n'
done
key=$(printf '%s' "$keys_list" | sha256sum | cut -c1-16)
entry="$cache_root/$key"
bin="$entry/bin"
mod_entry() { printf '%s/modules/%s/%s' "$cache_root" "$(basename "$1")" "${mkey[$1]}"; }

if [ "$mode" = print ]; then
  printf '%s\n' "$bin"
  exit 0
fi
if [ "$mode" = keys ]; then
  for m in "${modules[@]}"; do printf '%s %s %s\n' "$(basename "$m")" "${mkey[$m]}" "$(mod_entry "$m")"; done
  exit 0
fi

if [ -f "$entry/.complete" ]; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

mkdir -p "$cache_root/modules" 2>/dev/null || die "cannot create $cache_root (set NRC_GO_CACHE to a writable directory)"
[ -w "$cache_root" ] || die "$cache_root is not writable (set NRC_GO_CACHE to a writable directory)"

# One build at a time per cache root; a second caller waits, then finds the entry complete.
exec 9>"$cache_root/.lock"
if command -v flock >/dev/null; then
  flock -n 9 || { log "waiting for another build (lock $cache_root/.lock)"; flock 9; }
fi
if [ -f "$entry/.complete" ]; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

# Under the lock, any temporary directory left is from an interrupted build.
find "$cache_root" "$cache_root/modules" -mindepth 1 -maxdepth 2 -name '.tmp-*' -prune -exec rm -rf {} +
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
finish() {  # finish TMPDIR DEST START: the .complete marker, then the atomic rename
  {
    printf 'key=%s\n' "$(basename "$2")"
    printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'go=%s\n' "$(GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION)"
    printf 'seconds=%s\n' "$(secs "$3" "$(now)")"
  } > "$1/.complete"
  [ -e "$2" ] && rm -rf "$2"   # only ever an incomplete leftover: complete ones are never rebuilt
  mv -T "$1" "$2"
}

# build_module MODDIR: every tool of one module into its own entry.
build_module() {
  local m=$1 rel=${1#"$repo"/} dest line name pkg f mod ver t0 t_mod
  dest=$(mod_entry "$m")
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp -d "$(dirname "$dest")/.tmp-${mkey[$m]}.XXXXXX")
  chmod 755 "$tmp"
  mkdir -p "$tmp/bin"
  : > "$tmp/manifest.tsv"
  t_mod=$(now)
  log "building $rel into $dest"
  while IFS= read -r line; do
    split_line "$line"
    [ ${#fields[@]} -ge 2 ] || die "$rel/tools.txt: need '<binary> <package>': $line"
    name=${fields[0]}
    pkg=${fields[1]}
    envs=(CGO_ENABLED=0)
    flags=()
    for f in "${fields[@]:2}"; do
      # {version:MODULE} -> the version this go.mod selects for MODULE
      while [[ $f =~ \{version:([^}]+)\} ]]; do
        mod=${BASH_REMATCH[1]}
        ver=$(cd "$m" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOWORK=off "$GO" list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$mod") \
          || die "$rel/tools.txt: cannot resolve {version:$mod}"
        f=${f//"{version:$mod}"/$ver}
      done
      if [ ${#flags[@]} -eq 0 ] && [[ $f =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
        envs+=("$f")
      else
        flags+=("$f")
      fi
    done
    mkdir -p "$(dirname "$tmp/bin/$name")"
    t0=$(now)
    log "build $name <- $pkg ($rel${flags[*]:+, ${flags[*]}})"
    (
      cd "$m"
      env GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off "${envs[@]}" \
        "$GO" build -trimpath -o "$tmp/bin/$name" "${flags[@]}" "$pkg"
    ) || die "building $name ($pkg in $rel) failed"
    log "built $name in $(secs "$t0" "$(now)") s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rel" "$pkg" "${flags[*]}" >> "$tmp/manifest.tsv"
  done < <(tool_lines "$m")
  finish "$tmp" "$dest" "$t_mod"
  tmp=""
  log "$rel built in $(secs "$t_mod" "$(now)") s"
}

log "assembling $entry (go: $GO, $(GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION))"
t_all=$(now)
for m in "${modules[@]}"; do
  if [ -f "$(mod_entry "$m")/.complete" ]; then
    log "cached: ${m#"$repo"/} ($(mod_entry "$m"))"
  else
    build_module "$m"
  fi
done

# The combined bin dir: hard links (same file system; a copy otherwise), so pruning a module
# entry never breaks a combined one.
tmp=$(mktemp -d "$cache_root/.tmp-$key.XXXXXX")
chmod 755 "$tmp"
mkdir -p "$tmp/bin"
: > "$tmp/manifest.tsv"
for m in "${modules[@]}"; do
  src=$(mod_entry "$m")
  cp -a -l "$src/bin/." "$tmp/bin/" 2>/dev/null || cp -a "$src/bin/." "$tmp/bin/"
  cat "$src/manifest.tsv" >> "$tmp/manifest.tsv"
done
printf '%s' "$keys_list" > "$tmp/modules.txt"
finish "$tmp" "$entry" "$t_all"
tmp=""
log "all tools ready in $(secs "$t_all" "$(now)") s: $bin"

# Keep the newest $keep complete combined entries, and per module the newest $keep.
prune() {  # prune DIR: keep the newest $keep complete entries directly under DIR
  local d
  mapfile -t old < <(find "$1" -mindepth 2 -maxdepth 2 -name .complete -printf '%T@ %h\n' \
    | sort -rn | awk -v k="$keep" 'NR > k { print $2 }')
  for d in "${old[@]}"; do
    [ "$d" = "$entry" ] && continue
    log "pruning old cache entry $d"
    rm -rf "$d"
  done
}
prune "$cache_root"
for d in "$cache_root"/modules/*/; do prune "${d%/}"; done

printf '%s\n' "$bin"
