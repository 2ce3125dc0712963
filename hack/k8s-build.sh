#!/usr/bin/env bash
# Builds the Kubernetes programs of the cluster tests from source, at the
# version integration/cluster/go.mod pins, into a cache dir, only when one is
# missing or stale:
#   kubelet kube-proxy kube-apiserver kube-controller-manager kube-scheduler
#   agnhost e2e.test (the upstream e2e suite: go test -c k8s.io/kubernetes/test/e2e)
#   etcd (go.etcd.io/etcd/server/v3 embedded in kube/cmd/etcd of that module)
# The cache is keyed on the module's go.sum and the Go version: a change of
# either rebuilds everything (with a warm Go build cache that takes seconds
# per binary). All builds share one module cache and one build cache.
#
#   hack/k8s-build.sh CACHE_DIR [NAME...]   (default: every program)
set -euo pipefail
cache=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
module=$here/integration/cluster
all=(kubelet kube-proxy kube-apiserver kube-controller-manager kube-scheduler agnhost etcd e2e.test)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${all[@]}")

key=$( (sha256sum "$module/go.sum" | cut -d' ' -f1; go version; \
  sha256sum "$module"/kube/cmd/etcd/*.go | cut -d' ' -f1) | sha256sum | cut -d' ' -f1)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd) # the builds run in the module's dir
if [ "$(cat "$cache/.key" 2>/dev/null)" != "$key" ]; then
  # stale: every binary was built from another go.sum (or Go); rebuild all
  rm -f "${all[@]/#/$cache/}"
  echo "$key" >"$cache/.key"
fi

cd "$module"
export GOFLAGS=-mod=mod
for name in "${want[@]}"; do
  [ -x "$cache/$name" ] && continue
  start=$(date +%s)
  case $name in
    e2e.test) go test -c -o "$cache/$name.tmp" k8s.io/kubernetes/test/e2e ;;
    # default cgo, as the others: CGO_ENABLED=0 would recompile every
    # package that imports net (a second dependency tree); the agnhost
    # image carries the few libc files it links
    agnhost) go build -o "$cache/$name.tmp" k8s.io/kubernetes/test/images/agnhost ;;
    etcd) go build -o "$cache/$name.tmp" ./kube/cmd/etcd ;;
    kube-*|kubelet) go build -o "$cache/$name.tmp" "k8s.io/kubernetes/cmd/$name" ;;
    *) echo "k8s-build: unknown program $name" >&2; exit 2 ;;
  esac
  mv "$cache/$name.tmp" "$cache/$name"
  echo "k8s-build: $name built in $(( $(date +%s) - start ))s"
done
