# netpol — see README.md.
#   make          build bin/netpol and bin/netpol-agent
#   make test     unit, integration, real-node and an e2e slice (installs what it needs)
#   make perf     the performance table of issue 10 (5-10 minutes)
#   make demo     the seed policy on a demo node made of network namespaces
#   make conformance FAMILY=ipv4|ipv6|dual NODES=1|3   one conformance mode
#   make e2e      the upstream NetworkPolicy e2e suite on a real one-node cluster
#   make install  put the plugin in /opt/cni/bin and the conflist in /etc/cni/net.d

GO        ?= go
BIN       := $(CURDIR)/bin
CNI_CACHE ?= $(CURDIR)/.cache/cni
CNI_PLUGINS_VERSION := v1.9.1
CNITOOL_VERSION     := v1.3.1
# The flannel CNI plugin (meta/flannel) was last released in the plugins
# repo at v0.9.1; it speaks CNI up to 0.4.0 (10-policy-flannel.conflist).
FLANNEL_CNI_VERSION := v0.9.1
CNI_PATH  := $(CNI_CACHE):$(BIN)
TEST_ENV  := NETPOL_CNI_PATH=$(CNI_PATH) NETPOL_BIN_DIR=$(BIN)

.PHONY: all build test unit integration differential demo deps bench perf install clean test-apiserver fuzz conformance k8s-build e2e test-cluster cluster-images

all: build

# The plugin is built as deploy/Dockerfile ships it: static (CGO_ENABLED=0),
# so that each CNI call starts without the dynamic loader and libc (~2-3 ms
# of an ADD), and what the tests and make perf time is what runs on a node.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/netpol ./plugin/cmd/netpol
	$(GO) build -o $(BIN)/netpol-agent ./agent/cmd/netpol-agent

# deps installs the kernel tools (Debian packages) and the real CNI plugins
# when they are missing. It never touches the root namespace's firewall.
deps:
	@hack/deps.sh "$(CNI_CACHE)" "$(CNI_PLUGINS_VERSION)" "$(CNITOOL_VERSION)" "$(FLANNEL_CNI_VERSION)"

unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./conf/... ./policy/... ./agent/...

# test runs everything CI runs. The Kubernetes programs, containerd and the
# images (make cluster-images: the longest builds, 20+ minutes cold) build
# in the background at the lowest CPU priority while the main module's
# tests run, so they take only the CPU those tests leave idle; their log is
# .cache/cluster-build.log. Then the real-node tests: containerd
# (test-runtime), the kubelet node and the DaemonSet (test-cluster), and
# E2E_SLICE of the upstream suite (make e2e runs all of it).
test: build deps
	$(GO) vet ./...
	@mkdir -p .cache; \
	nice -n 19 $(MAKE) --no-print-directory cluster-images >.cache/cluster-build.log 2>&1 & bg=$$!; \
	rc=0; \
	$(TEST_ENV) $(GO) test -count=1 -p 1 -timeout 60m ./... || rc=1; \
	$(MAKE) --no-print-directory test-apiserver || rc=1; \
	echo "test: waiting for the cluster builds (.cache/cluster-build.log)"; \
	if ! wait $$bg; then tail -40 .cache/cluster-build.log; rc=1; fi; \
	exit $$rc
	$(MAKE) --no-print-directory test-runtime
	$(MAKE) --no-print-directory test-cluster
	$(MAKE) --no-print-directory e2e E2E_FOCUS='$(E2E_SLICE)'

integration: build deps
	$(TEST_ENV) $(GO) test -count=1 -p 1 -timeout 40m -v ./integration/...

# conformance runs the upstream-derived conformance cases in one mode:
# pods of FAMILY (ipv4, ipv6, or dual: every cell probed over both) on
# NODES nodes (1, or 3 with the bridge chain and with the flannel chain).
# It ends with "N passed, M failed" and exits 0 only when none failed
# (-test.v: a failing case's tables show as soon as it fails).
# make test runs ipv4, ipv6 and dual on one node and dual on three.
FAMILY ?= dual
NODES  ?= 1
conformance: build deps
	@$(GO) test -c -o $(CURDIR)/.cache/conformance-$(FAMILY)-$(NODES).test ./integration/conformance
	@$(TEST_ENV) NETPOL_CONFORMANCE_FAMILY=$(FAMILY) NETPOL_CONFORMANCE_NODES=$(NODES) \
		$(CURDIR)/.cache/conformance-$(FAMILY)-$(NODES).test -test.run '^TestConformance$$' -test.v -test.timeout 60m

# differential runs many random scenarios on real traffic against the
# evaluator (make test runs a handful). SEEDS (per family) and FIRST choose
# them, FAMILIES the pods' address families (dual takes about twice as long).
SEEDS ?= 200
FIRST ?= 1
FAMILIES ?= ipv4,ipv6,dual
differential: build deps
	$(TEST_ENV) NETPOL_DIFF_SEEDS=$(SEEDS) NETPOL_DIFF_FIRST=$(FIRST) NETPOL_DIFF_FAMILIES=$(FAMILIES) $(GO) test -count=1 -timeout 150m -v -run 'TestEvaluatorAgrees|TestDifferentialRealTraffic' ./policy/ ./integration/

# fuzz runs each Go fuzz target for FUZZTIME, one after another (make test
# runs only their seed corpora). A failing input is written under the
# package's testdata/fuzz/FuzzX/; keep it there as a regression seed.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	FuzzParse:./conf \
	FuzzParsePodArgs:./conf \
	FuzzResultIPs:./plugin \
	FuzzLoad:./agent/manifest \
	FuzzGuessedKind:./agent/manifest \
	FuzzSplitYAML:./agent/manifest \
	FuzzDecodeIndex:./state \
	FuzzParseSave:./ipt \
	FuzzParseIPSetSave:./ipt
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t%%:*} ($${t#*:}, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

bench: build deps
	$(TEST_ENV) $(GO) test -run '^$$' -bench . -benchtime 20x ./...

# perf prints the table of issue 10 (README: "Performance figures"): every
# row a ratio of netpol's side to a baseline measured beside it, pair by
# pair, in the same run. PAIRS (>= 5) sets the pairs of each ratio row;
# ROWS (e.g. ROWS=5,6) measures only those rows (all when empty).
PAIRS ?= 7
ROWS ?=
perf: build
	@PERF_DEPS=1 hack/deps.sh "$(CNI_CACHE)" "$(CNI_PLUGINS_VERSION)" "$(CNITOOL_VERSION)" "$(FLANNEL_CNI_VERSION)"
	$(TEST_ENV) NETPOL_PERF_PAIRS=$(PAIRS) NETPOL_PERF_ROWS=$(ROWS) $(GO) test -count=1 -run '^$$' -bench '^BenchmarkPerf$$' -benchtime 1x -timeout 30m ./integration/

demo: build deps
	$(TEST_ENV) $(GO) run ./integration/cmd/netpol-demo

install: build
	install -D -m 0755 $(BIN)/netpol /opt/cni/bin/netpol
	install -D -m 0755 $(BIN)/netpol-agent /usr/local/bin/netpol-agent
	install -D -m 0644 10-policy.conflist /etc/cni/net.d/10-policy.conflist

clean:
	rm -rf $(BIN)

# test-apiserver runs netpol-agent against a real kube-apiserver started in
# the test process (k8s.io/kubernetes' test server on an embedded etcd):
# RBAC, policy lifecycle on real traffic, --once, restart without the API,
# and the 10,000-pod scale measurements. It is its own Go module
# (integration/apiserver) so that Kubernetes stays out of the main build;
# its first build takes about 10 minutes, later ones seconds. -mod=mod lets
# it follow new requirements of the main module.
test-apiserver: build deps
	cd integration/apiserver && $(TEST_ENV) $(GO) test -mod=mod -count=1 -timeout 30m -v -run 'TestAPIServer' .

# image writes image archives into .cache/images/ without a registry or
# docker (integration/cluster/image): netpol.tar (netpol:latest: both
# binaries, iptables and ipset from Debian packages), netpol-pause.tar (the
# pod sandbox image) and agnhost.tar (the upstream e2e suite's test server,
# built from the Kubernetes source). Load one with
# `ctr -n k8s.io images import FILE`. IMAGES picks some of them; AGNHOST
# names a prebuilt static agnhost instead of building it.
.PHONY: image
IMAGES  ?= pause netpol agnhost
AGNHOST ?=
image:
	cd integration/cluster && $(GO) run ./cmd/netpol-image -out $(CURDIR)/.cache/images $(if $(AGNHOST),-agnhost $(AGNHOST)) $(IMAGES)

# test-runtime runs netpol under a real containerd (integration/cluster:
# TestRuntime*, and the image package's tests): it installs runc and builds
# containerd, its shim, ctr and crictl into .cache/cluster when missing,
# builds the images once (make image), and fails instead of skipping when
# anything is missing (NETPOL_REQUIRE_CLUSTER=1).
CLUSTER_BIN := $(CURDIR)/.cache/cluster
CONTAINERD_VERSION := v2.4.2
CRI_TOOLS_VERSION  := v1.37.0
.PHONY: test-runtime
test-runtime: build deps
	@hack/cluster-deps.sh "$(CLUSTER_BIN)" "$(CONTAINERD_VERSION)" "$(CRI_TOOLS_VERSION)"
	$(MAKE) --no-print-directory image
	cd integration/cluster && $(TEST_ENV) NETPOL_CLUSTER_BIN=$(CLUSTER_BIN) NETPOL_IMAGE_DIR=$(CURDIR)/.cache/images \
		NETPOL_REQUIRE_CLUSTER=1 $(GO) test -count=1 -p 1 -timeout 20m -v -run 'TestRuntime|TestBuildWriteReadBack|TestMissingLibraries|TestNetpolToolsClosure' . ./image

# k8s-build builds the Kubernetes programs of integration/cluster (kubelet,
# kube-proxy, control plane, etcd, agnhost, e2e.test) from source at the
# version its go.mod pins, into K8S_CACHE, only when missing or stale.
K8S_CACHE ?= $(CURDIR)/.cache/k8s
CLUSTER_ENV := $(TEST_ENV) NETPOL_K8S_BIN=$(K8S_CACHE) NETPOL_CLUSTER_BIN=$(CLUSTER_BIN) \
	NETPOL_IMAGE_DIR=$(CURDIR)/.cache/images NETPOL_REQUIRE_CLUSTER=1
k8s-build:
	@hack/k8s-build.sh "$(K8S_CACHE)"

# e2e runs the upstream e2e suite (e2e.test built from
# k8s.io/kubernetes/test/e2e, unmodified) focused on E2E_FOCUS (default:
# every NetworkPolicy spec) against a real one-node cluster (containerd,
# kubelet, kube-proxy, control plane; netpol installed by deploy/netpol.yaml)
# and ends with the suite's own "Ran N of M Specs" and SUCCESS!/FAIL! lines
# (repeated from .cache/e2e.log after go test's own lines). Only the specs that
# send SCTP traffic are skipped (this kernel has no SCTP).
E2E_FOCUS ?= Netpol
# E2E_SLICE is 16 of the 48 specs, every kind of peer, port, protocol and
# direction (7.5 minutes here, the node's start included); make test
# runs it: make e2e E2E_FOCUS='$(E2E_SLICE)'.
E2E_SLICE := Netpol API|default-deny-all|based on PodSelector and NamespaceSelector|ingress access on one named port|except clause while egress|allowing SCTP, even|UDP should support a .default-deny-ingress|policy based on Ports|denying of egress traffic on the client side|ingress access from updated pod|deny egress from pods based on PodSelector
e2e: build deps k8s-build cluster-images
	@cd integration/cluster && $(CLUSTER_ENV) NETPOL_E2E=1 NETPOL_E2E_FOCUS='$(E2E_FOCUS)' \
		NETPOL_E2E_LOG=$(CURDIR)/.cache/e2e.log \
		$(GO) test -mod=mod -count=1 -timeout 6h -v -run '^TestUpstreamNetpolE2E$$' .; \
		status=$$?; grep -E '^Ran [0-9]+ of [0-9]+ Specs|^(SUCCESS|FAIL)! ' $(CURDIR)/.cache/e2e.log; exit $$status

# test-cluster runs the kubelet-node tests of integration/cluster: the
# control plane alone, and the DaemonSet's install, policy on real traffic
# and uninstall (zero residue) on a node the kubelet runs.
test-cluster: build deps k8s-build cluster-images
	cd integration/cluster && $(CLUSTER_ENV) $(GO) test -mod=mod -count=1 -timeout 30m -v \
		-run 'TestControlPlaneServesPods|TestDaemonSetInstallsNetpol|TestDecodeDeployManifests' . ./kube

# cluster-images: the runtime's programs and the images (agnhost from
# k8s-build's cache), each only when missing or stale.
cluster-images: k8s-build
	@hack/cluster-deps.sh "$(CLUSTER_BIN)" "$(CONTAINERD_VERSION)" "$(CRI_TOOLS_VERSION)"
	$(MAKE) --no-print-directory image AGNHOST=$(K8S_CACHE)/agnhost
