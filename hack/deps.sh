#!/usr/bin/env bash
# Installs what the tests and the demo need, only when missing:
# iptables, ipset and iproute2 from Debian (and iperf3 with PERF_DEPS=1,
# for make perf), and the reference CNI plugins
# (bridge, host-local, portmap, loopback) plus cnitool into a cache dir,
# and the flannel CNI plugin (its own, older release line).
set -euo pipefail
cache=$1 plugins_version=$2 cnitool_version=$3 flannel_version=${4:-v0.9.1}

missing=()
command -v iptables-restore >/dev/null || missing+=(iptables)
command -v ipset >/dev/null || missing+=(ipset)
command -v ip >/dev/null || missing+=(iproute2)
# make perf measures bulk throughput with iperf3 (PERF_DEPS=1).
if [ "${PERF_DEPS:-0}" = 1 ]; then
  command -v iperf3 >/dev/null || missing+=(iperf3)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$cache"
for p in main/bridge ipam/host-local meta/portmap main/loopback; do
  name=${p#*/}
  if [ ! -x "$cache/$name" ]; then
    echo "deps: go install $name@$plugins_version"
    GOBIN="$cache" go install "github.com/containernetworking/plugins/plugins/$p@$plugins_version"
  fi
done
if [ ! -x "$cache/cnitool" ]; then
  echo "deps: go install cnitool@$cnitool_version"
  GOBIN="$cache" go install "github.com/containernetworking/cni/cnitool@$cnitool_version"
fi
if [ ! -x "$cache/flannel" ]; then
  echo "deps: go install flannel@$flannel_version"
  GOBIN="$cache" go install "github.com/containernetworking/plugins/plugins/meta/flannel@$flannel_version"
fi
# br_netfilter makes bridged traffic visible to iptables (physdev path).
if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  modprobe br_netfilter 2>/dev/null || echo "deps: warning: br_netfilter is not loaded; the bridged path cannot be enforced" >&2
fi
