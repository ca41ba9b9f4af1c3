#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller (the reference of `make bench-flux`)
# from the Go modules pinned in bench/flux/tools/, once per machine, and copies their CRDs from
# the same modules next to them. Not part of `make test`: only the Flux benchmark needs them.
# Each build takes about 3 minutes on two cores; the result is cached under ~/.cache keyed by
# the two versions and trusted only once a completed-marker says so (as tests/cluster/build.sh).
#
# Usage: bench/flux/build.sh              build if needed, print the cache dir on the last line
#        bench/flux/build.sh --check      print the cache dir if complete, else say why (exit 1)
#
# The cache dir holds bin/source-controller, bin/kustomize-controller and crds/*.yaml.
# Environment: RECONCILER_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/polyaxon-reconciler).
set -euo pipefail

# Bump when the build recipe (flags, binary list) changes so existing caches are rebuilt.
RECIPE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
cache_root="${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/polyaxon-reconciler}"
controllers=(source-controller kustomize-controller)

version_of() {
  awk -v m="github.com/fluxcd/$1" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$tools/$1/go.mod"
}
source_version="$(version_of source-controller)"
kustomize_version="$(version_of kustomize-controller)"
if [[ -z "$source_version" || -z "$kustomize_version" ]]; then
  echo "bench/flux/build.sh: cannot read the controller versions from $tools/*/go.mod" >&2
  exit 2
fi

dest="$cache_root/flux-source-$source_version-kustomize-$kustomize_version"
bin="$dest/bin"
crds="$dest/crds"
marker="$dest/.complete"
log="$dest/build.log"

fingerprint="$(
  {
    echo "recipe=$RECIPE"
    for f in "$tools"/*/go.mod "$tools"/*/go.sum; do
      echo "$(basename "$(dirname "$f")")/$(basename "$f") $(sha256sum <"$f" | cut -c1-64)"
    done
  } | sha256sum | cut -c1-64
)"

is_complete() {
  [[ -f "$marker" && "$(cat "$marker")" == "$fingerprint" ]] || return 1
  local c
  for c in "${controllers[@]}"; do [[ -x "$bin/$c" ]] || return 1; done
  compgen -G "$crds/*.yaml" >/dev/null
}

if [[ "${1:-}" == "--check" ]]; then
  if is_complete; then
    echo "$dest"
    exit 0
  fi
  echo "Flux controllers are not built in $dest (run: make flux-binaries, about 6 min)" >&2
  exit 1
fi

if is_complete; then
  echo "bench/flux/build.sh: cached Flux controllers are complete"
  echo "$dest"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "bench/flux/build.sh: no 'go' on PATH; cannot build Flux's controllers" >&2
  exit 3
fi
go_have="$(go env GOVERSION)"
for c in "${controllers[@]}"; do
  go_need="$(awk '$1 == "go" {print $2; exit}' "$tools/$c/go.mod")"
  if [[ "$(printf '%s\n%s\n' "go$go_need" "$go_have" | sort -V | head -n1)" != "go$go_need" ]]; then
    echo "bench/flux/build.sh: $go_have is older than the go$go_need that $c needs" >&2
    exit 3
  fi
done

mkdir -p "$dest"
exec > >(tee -a "$log") 2>&1
# One builder per machine: a second invocation waits here, then finds the marker and leaves.
exec 9>"$dest.lock"
if ! flock -n 9; then
  echo "bench/flux/build.sh: another build is running; waiting for its lock"
  flock 9
fi
if is_complete; then
  echo "bench/flux/build.sh: cached Flux controllers are complete"
  echo "$dest"
  exit 0
fi

rm -f "$marker"
if [[ ! -f "$bin/.fingerprint" || "$(cat "$bin/.fingerprint")" != "$fingerprint" ]]; then
  rm -rf "$bin" "$crds"
  mkdir -p "$bin"
  echo "$fingerprint" >"$bin/.fingerprint"
fi
mkdir -p "$crds"

export GOMODCACHE="$cache_root/go/mod"
export GOCACHE="$cache_root/go/build"
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

echo "bench/flux/build.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) building into $dest"
for c in "${controllers[@]}"; do
  pkg="github.com/fluxcd/$c"
  (cd "$tools/$c" && go mod download "$pkg")
  # The CRDs ship inside the controller's own module.
  module_dir="$(cd "$tools/$c" && go list -m -f '{{.Dir}}' "$pkg")"
  install -m 0644 "$module_dir"/config/crd/bases/*.yaml "$crds/"
  if [[ -x "$bin/$c" ]]; then
    echo "bench/flux/build.sh: $c already built"
    continue
  fi
  start=$SECONDS
  echo "bench/flux/build.sh: building $c ($pkg)"
  # niced, one at a time: the machine's two cores stay usable.
  (cd "$tools/$c" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin/.$c.tmp" "$pkg")
  mv -f "$bin/.$c.tmp" "$bin/$c"
  echo "bench/flux/build.sh: built $c in $((SECONDS - start))s"
done

echo "$fingerprint" >"$marker.tmp"
mv -f "$marker.tmp" "$marker"
echo "bench/flux/build.sh: Flux controllers complete"
echo "$dest"
