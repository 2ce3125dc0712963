// Package node is the part of netpol's core that the CNI plugin needs on
// every invocation, with no Kubernetes type in it: the record of a pod's
// attachment, the per-node Index and its verdict on a pod's addresses, the
// names of the fixed chains and sets, how drops are logged, and the
// skeleton ruleset of a node whose agent never synced. It imports only ipt
// and the standard library, so that the plugin binary links no Kubernetes
// package (their initialisation alone would cost every ADD milliseconds).
// Package policy builds on it and re-exports its names; nothing here
// performs I/O, reads a clock, logs or keeps globals.
package node

import (
	"net"
	"time"

	"github.com/netpol/netpol/ipt"
)

// Attachment is one pod interface that CNI ADD set up on this node, as the
// plugin recorded it under dataDir.
type Attachment struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	IPs         []string `json:"ips"`
	// Created is when ADD recorded the attachment: of two attachments
	// holding one address, the newer owns it (see OwnAddresses). Zero in
	// records of older versions: older than any other.
	Created time.Time `json:"created,omitzero"`
	// Netns is the network namespace ADD was given (CNI_NETNS); the agent
	// takes an attachment whose namespace is gone, and whose pod the source
	// no longer has, for one whose DEL was lost. Empty in records of older
	// versions.
	Netns string `json:"netns,omitempty"`
}

// PodKey is "namespace/name" of the attachment's pod.
func (a *Attachment) PodKey() string { return a.Namespace + "/" + a.Name }

// Index is the small per-node view the plugin reads on ADD and DEL: which
// sets each local pod's IPs belong in. Its size grows with the pods of this
// node, not with the cluster, so ADD latency does not grow with cluster size.
type Index struct {
	Version int
	// Isolated lists the namespaces that have at least one NetworkPolicy: a pod
	// there that the index does not know is denied until the agent knows it.
	Isolated []string
	// Pods maps "namespace/name" of each local pod to its memberships.
	Pods map[string][]Membership
}

// Membership says: the pod's address of Family belongs in Set, as the entry
// IP+Suffix (Suffix is empty for hash:ip sets, ",tcp:8080" for named ports).
type Membership struct {
	Family ipt.Family
	Set    string
	Suffix string // "" for hash:ip sets, ",tcp:8080" for named ports
}

// AddressFamily returns the family of an address or CIDR, and false if it
// parses as neither.
func AddressFamily(s string) (ipt.Family, bool) {
	ip := net.ParseIP(s)
	if ip == nil {
		var err error
		if ip, _, err = net.ParseCIDR(s); err != nil {
			return 0, false
		}
	}
	if ip.To4() != nil {
		return ipt.IPv4, true
	}
	return ipt.IPv6, true
}

// CanonicalIP is an address in its canonical form ("fd00::1", "10.0.0.1"
// for "::ffff:10.0.0.1"); anything that is no address is returned as is.
func CanonicalIP(s string) string {
	if ip := net.ParseIP(s); ip != nil {
		return ip.String()
	}
	return s
}
