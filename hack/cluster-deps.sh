#!/usr/bin/env bash
# Installs what the real-node tests (integration/cluster) need from outside
# this repo, only when missing: runc from Debian, and containerd,
# containerd-shim-runc-v2, ctr and crictl built from source at pinned
# versions with `go install` into a cache dir. It never touches the
# machine's /etc/cni, /opt/cni, containerd config or firewall.
#   hack/cluster-deps.sh CACHE_DIR [CONTAINERD_VERSION] [CRI_TOOLS_VERSION]
set -euo pipefail
cache=${1:?usage: hack/cluster-deps.sh CACHE_DIR [CONTAINERD_VERSION] [CRI_TOOLS_VERSION]}
containerd_version=${2:-v2.4.2}
critools_version=${3:-v1.37.0}

if ! command -v runc >/dev/null; then
  echo "cluster-deps: installing runc"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq runc >/dev/null
fi

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# Binaries of other versions (a bumped pin) are rebuilt.
stamp="containerd=$containerd_version cri-tools=$critools_version"
if [ "$(cat "$cache/.versions" 2>/dev/null)" != "$stamp" ]; then
  rm -f "$cache/containerd" "$cache/containerd-shim-runc-v2" "$cache/ctr" "$cache/crictl"
fi
# The build flags of a release are not needed here: the CRI plugin is part
# of containerd's default build, and cgo is only used for optional
# snapshotters (btrfs) that the tests do not use.
for cmd in containerd containerd-shim-runc-v2 ctr; do
  if [ ! -x "$cache/$cmd" ]; then
    echo "cluster-deps: go install $cmd@$containerd_version"
    GOBIN="$cache" GOFLAGS= go install "github.com/containerd/containerd/v2/cmd/$cmd@$containerd_version"
  fi
done
if [ ! -x "$cache/crictl" ]; then
  echo "cluster-deps: go install crictl@$critools_version"
  GOBIN="$cache" GOFLAGS= go install "sigs.k8s.io/cri-tools/cmd/crictl@$critools_version"
fi
echo "$stamp" >"$cache/.versions"
