package policy

import (
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// The k8s-free types and functions of package node that the plugin uses,
// under the names the rest of netpol knows them by.
type (
	Attachment = node.Attachment
	Index      = node.Index
	Membership = node.Membership
	Action     = node.Action
	Reason     = node.Reason
	Verdict    = node.Verdict
	DropLog    = node.DropLog
	DropCause  = node.DropCause
)

const (
	Next  = node.Next
	Allow = node.Allow
	Deny  = node.Deny

	OwnAddress           = node.OwnAddress
	NoIndex              = node.NoIndex
	KnownPod             = node.KnownPod
	UnknownIsolated      = node.UnknownIsolated
	UnknownOpen          = node.UnknownOpen
	NotAPod              = node.NotAPod
	NotSelected          = node.NotSelected
	AllowedByRule        = node.AllowedByRule
	NoRuleAllows         = node.NoRuleAllows
	LinkLocalOrMulticast = node.LinkLocalOrMulticast
	WouldDeny            = node.WouldDeny

	ReasonNoPolicy   = node.ReasonNoPolicy
	ReasonUnknown    = node.ReasonUnknown
	ReasonNoPod      = node.ReasonNoPod
	ReasonNoGroup    = node.ReasonNoGroup
	VerdictDrop      = node.VerdictDrop
	VerdictWouldDeny = node.VerdictWouldDeny
)

// DefaultDropLog is node.DefaultDropLog.
func DefaultDropLog() DropLog { return node.DefaultDropLog() }

// ParseDropPrefix is node.ParseDropPrefix.
func ParseDropPrefix(s string) (DropCause, error) { return node.ParseDropPrefix(s) }

// OwnAddresses is node.OwnAddresses.
func OwnAddresses(atts []Attachment) []Attachment { return node.OwnAddresses(atts) }

// AddressFamily is node.AddressFamily.
func AddressFamily(s string) (ipt.Family, bool) { return node.AddressFamily(s) }
