// Package conformance replays the cases of the upstream Kubernetes
// NetworkPolicy e2e suite (kubernetes test/e2e/network/netpol,
// network_policy.go) on a netpol node made of network namespaces, with pods
// created through the real CNI chain (bridge -> host-local -> netpol) and
// policies applied by netpol-agent from a manifest directory.
//
// # Topology
//
// As upstream: namespaces x, y and z (labels ns=<name>, plus the
// kubernetes.io/metadata.name label the agent adds as the API server
// does), pods a, b and c in each (label pod=<name>), all on one node. Every
// pod serves TCP and UDP on ports 80 and 81 and declares them as upstream's
// containers do: container cont-80-tcp with port serve-80-tcp, cont-80-udp
// with serve-80-udp, cont-81-tcp with serve-81-tcp, cont-81-udp with
// serve-81-udp.
//
// The suite runs on three topologies: one node (bridge -> netpol); three
// nodes joined by an underlay with flannel host-gw style routes, pods placed
// round-robin so that most pairs cross nodes (egress enforced on the sending
// node, ingress on the receiving one, through the routed path), on the
// bridge chain; and the same three nodes on the flannel chain
// (flannel -> netpol -> portmap, cniVersion 0.4.0, flannel delegating to
// bridge). Every node runs its own agent; its manifests list every pod, the
// pods of other nodes with spec.nodeName and status.podIPs.
//
// # Address families
//
// Each topology runs in three modes: ipv4 (host-local hands out
// 10.244.N.0/24), ipv6 (IPv6-only pods, fd00:10:244:N::/64, IPv6 routes
// between the nodes) and dual (both ranges: every pod has one address of
// each family, and status.podIPs lists both). In dual mode every cell of
// every table is probed over each family, with the protocol and port the
// table names; a table means the same over both. The ipBlock cases write
// /128 where IPv4 writes /32 (as upstream's IPv6 runs do) and, for "many
// IPs around the pod", the /16 around it where IPv4 takes the /4; in dual
// mode every ipBlock peer is written once per family in the same rule.
// By default (make test) the suite runs ipv4, ipv6 and dual on one node and
// dual on three nodes with both chains; $NETPOL_CONFORMANCE_FAMILY and
// $NETPOL_CONFORMANCE_NODES choose modes (make conformance FAMILY=..
// NODES=..), and the run ends with "N passed, M failed" (cases, both
// orders, over every mode run).
//
// # Truth tables
//
// Every case states, for each (protocol, port) it probes, a hand-written
// 9x9 table of which source pod (row) may open a connection to which
// destination pod (column). The tables are written from the intent of each
// upstream test, never computed from the policies (and never by netpol's
// own code), and every cell is checked with a real connection.
//
// The diagonal (a pod to its own IP) is always expected allowed. Such
// traffic is routed over the pod's loopback inside its own network
// namespace; it never reaches the node's bridge or FORWARD chain, where
// NetworkPolicy is enforced, and a pod cannot be kept from talking to
// itself. Upstream ignores these cells (ignoreLoopback, kubernetes issue
// 95879) because CNIs disagree; we probe them and require "allowed", which
// is the promise netpol makes ("a pod's traffic to itself is never
// blocked").
//
// # Orders
//
// Every case runs in two orders, at once (they share no node):
//
//   - pods-first: the nine pods exist (CNI ADD) and the agent knows them with
//     no policies; then the case's policies are written and synced, and the
//     table is probed. All pods-first cases share one node and its nine pods;
//     before each case the manifests are reset to the plain topology with no
//     policies and synced.
//   - policies-first: on a fresh node, the namespaces, pods (without IPs) and
//     policies are written and synced first; then the nine pods are created
//     through CNI ADD and probed at once, with no further sync: the plugin
//     alone must put each pod into its sets at ADD time.
//
// Later steps of a case (label changes of pods or namespaces, policy
// updates or deletions) rewrite the manifests and sync in both orders.
//
// Every probe stands for a new connection, as upstream's do (its cases run
// in new namespaces with new pods each time). So before every probe round
// each node's conntrack table is flushed: netpol returns established
// traffic before any policy, and a pods-first node still tracks the flows
// of earlier cases and steps, which a UDP probe whose random source port
// happens to repeat one would pass as. (That an open connection keeps
// flowing when a policy tightens is tested on its own, by
// TestEstablishedAndRepliesInBothFamilies in integration.)
//
// The ipBlock cases need pod IPs inside the policies. In pods-first order
// they are the IPs CNI ADD returned. In policies-first order they are
// predicted before the pods exist: host-local on a fresh node hands out
// 10.244.N.2, .3, ... (fd00:10:244:N::2, ::3, ...) in the order of ADD, and pods are added one by one in
// the order x/a x/b x/c y/a ... z/c, round-robin over the nodes; after ADD
// the suite checks that every pod got the address predicted for it. In that
// order the manifests carry every pod's predicted address in status.podIPs
// from the start, as the API would once the pods run, so that the agents of
// the other nodes know the remote peers without a sync after ADD.
//
// # SCTP
//
// The kernel of this project's machines has no SCTP, so SCTP connections
// cannot be probed. The cases that only use SCTP in a policy and probe TCP or
// UDP ("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'",
// "should properly isolate pods that are selected by a policy allowing
// SCTP") run in full. The three SCTP-probe cases still apply their policies
// in both orders (the rules must install), skip their SCTP probe, and probe
// TCP on the same port instead, with the table the same policy means for
// TCP.
package conformance
