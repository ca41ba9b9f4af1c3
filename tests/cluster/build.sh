#!/usr/bin/env bash
# Builds the binaries of the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from the Go modules pinned in tests/cluster/tools/, once per
# machine. A kube-apiserver build takes many minutes on two cores, so the result is cached under
# ~/.cache keyed by the Kubernetes version, and only trusted once a completed-marker says so.
#
# Usage: tests/cluster/build.sh              build if needed, print the bin dir on the last line
#        tests/cluster/build.sh --print-dir  print the bin dir and exit (nothing is built)
#        tests/cluster/build.sh --check      print the bin dir if the cache is complete, else say
#                                            why not on stderr and exit 1 (nothing is built)
#
# Environment: RECONCILER_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/polyaxon-reconciler).
set -euo pipefail

# Bump when the build recipe (flags, binary list) changes so existing caches are rebuilt.
RECIPE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
cache_root="${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/polyaxon-reconciler}"

# The pinned version is read from the require block go mod tidy keeps in the wrapper's go.mod.
kube_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$tools/kubernetes/go.mod")"
if [[ ! "$kube_version" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "build.sh: cannot read the k8s.io/kubernetes version from $tools/kubernetes/go.mod" >&2
  exit 2
fi
kube_major="${BASH_REMATCH[1]}"
kube_minor="${BASH_REMATCH[2]}"

dest="$cache_root/k8s-$kube_version"
bin="$dest/bin"
marker="$dest/.complete"
log="$dest/build.log"
failed="$dest/.failed"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$bin"
  exit 0
fi

# The fingerprint covers every input that changes the binaries, so an edited go.mod is rebuilt
# even though the directory name (the Kubernetes version) stays the same.
fingerprint="$(
  {
    echo "recipe=$RECIPE"
    for f in "$tools"/*/go.mod "$tools"/*/go.sum; do
      echo "$(basename "$(dirname "$f")")/$(basename "$f") $(sha256sum <"$f" | cut -c1-64)"
    done
  } | sha256sum | cut -c1-64
)"

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

is_complete() {
  [[ -f "$marker" && "$(cat "$marker")" == "$fingerprint" ]] || return 1
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

if [[ "${1:-}" == "--check" ]]; then
  if is_complete; then
    echo "$bin"
    exit 0
  elif [[ -f "$dest.lock" ]] && ! flock -n "$dest.lock" true; then
    echo "Kubernetes $kube_version test binaries are being built right now by another build.sh; see $log" >&2
  elif [[ -f "$failed" ]]; then
    echo "build of the Kubernetes $kube_version test binaries failed ($(cat "$failed")); see $log" >&2
  else
    echo "Kubernetes $kube_version test binaries are not built in $dest (run: make k8s-binaries)" >&2
  fi
  exit 1
fi

if is_complete; then
  echo "build.sh: cached control-plane binaries are complete"
  echo "$bin"
  exit 0
fi

mkdir -p "$dest"
# Anything that stops the build from here on is recorded, so that the test suite can say why it
# skipped the cluster tests instead of only that it did.
exec > >(tee -a "$log") 2>&1
step="checking the Go toolchain"
trap 'rc=$?; if ((rc != 0)); then echo "$step: exit $rc" >"$failed"; fi' EXIT

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: no 'go' on PATH; cannot build the Kubernetes test binaries" >&2
  exit 3
fi
go_have="$(go env GOVERSION)"
go_need="$(awk '$1 == "go" {print $2; exit}' "$tools/kubernetes/go.mod")"
if [[ "$(printf '%s\n%s\n' "go$go_need" "$go_have" | sort -V | head -n1)" != "go$go_need" ]]; then
  echo "build.sh: $go_have is older than the go$go_need that k8s.io/kubernetes $kube_version needs" >&2
  exit 3
fi

step="waiting for the build lock"
# One builder per machine: a second invocation waits here, then finds the marker and leaves.
exec 9>"$dest.lock"
if ! flock -n 9; then
  echo "build.sh: another build of $kube_version is running; waiting for its lock"
  flock 9
fi
if is_complete; then
  echo "build.sh: cached control-plane binaries are complete"
  echo "$bin"
  exit 0
fi

rm -f "$marker" "$failed"
echo "build.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) building into $dest"
# Binaries left from another fingerprint are stale; those from this one (an interrupted build)
# are kept, because each was moved into place only after its build succeeded.
if [[ ! -f "$bin/.fingerprint" || "$(cat "$bin/.fingerprint")" != "$fingerprint" ]]; then
  rm -rf "$bin"
  mkdir -p "$bin"
  echo "$fingerprint" >"$bin/.fingerprint"
fi

export GOMODCACHE="$cache_root/go/mod"
export GOCACHE="$cache_root/go/build"
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$kube_major -X $pkg.gitMinor=$kube_minor"
  kube_ldflags+=" -X $pkg.gitCommit=unknown -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

# build NAME MODULE_DIR PACKAGE LDFLAGS: one binary at a time, niced, so that the two cores this
# machine has stay usable; -pgo=off skips kube-apiserver's profile-guided build, which is slower
# to compile and buys nothing for tests.
build() {
  local name="$1" module="$2" pkg="$3" ldflags="$4"
  if [[ -x "$bin/$name" ]]; then
    echo "build.sh: $name already built"
    return 0
  fi
  local start=$SECONDS
  step="building $name"
  echo "build.sh: building $name ($pkg)"
  (cd "$tools/$module" && nice -n 10 go build -trimpath -pgo=off -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg")
  mv -f "$bin/.$name.tmp" "$bin/$name"
  echo "build.sh: built $name in $((SECONDS - start))s"
}

total_start=$SECONDS
step="downloading Go modules"
(cd "$tools/kubernetes" && go mod download)
(cd "$tools/etcd" && go mod download)
(cd "$tools/kwok" && go mod download)
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w"
build kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"

step="finishing"
echo "$fingerprint" >"$marker.tmp"
mv -f "$marker.tmp" "$marker"
echo "build.sh: control-plane binaries complete in $((SECONDS - total_start))s"
echo "$bin"
