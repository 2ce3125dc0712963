package kube

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/netpol/netpol/agent/source"
)

// maxReceived bounds the changes kept between two Loads (the initial
// lists of a large cluster stay under it); later ones are not timed.
const maxReceived = 200000

// receipts records when each change event arrived, for the realization
// histogram (source.Receiver).
type receipts struct {
	mu      sync.Mutex
	pending []source.Change // arrived since the last Load
	loaded  []source.Change // included in the last Load, not taken yet
}

// note records obj's event as received now; deleted leaves the version
// empty.
func (r *receipts) note(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	var c source.Change
	switch o := obj.(type) {
	case *networkingv1.NetworkPolicy:
		c = source.Change{Object: "networkpolicy " + o.Namespace + "/" + o.Name, Version: o.ResourceVersion}
	case *cachedPod:
		c = source.Change{Object: "pod " + o.Namespace + "/" + o.Name, Version: o.ResourceVersion}
	case *corev1.Namespace:
		c = source.Change{Object: "namespace " + o.Name, Version: o.ResourceVersion}
	default:
		return
	}
	if deleted {
		c.Version = ""
	}
	c.Received = time.Now()
	r.mu.Lock()
	if len(r.pending) < maxReceived {
		r.pending = append(r.pending, c)
	}
	r.mu.Unlock()
}

// loading moves what arrived so far to what the Load being made includes
// (an event that arrives while it is built may be in it too: it is then
// timed to the next commit, later than it was in force, never earlier).
func (r *receipts) loading() {
	r.mu.Lock()
	r.loaded = append(r.loaded, r.pending...)
	r.pending = nil
	r.mu.Unlock()
}

// TakeReceived returns the changes the last Loads included, with when each
// arrived, and forgets them (source.Receiver).
func (s *Source) TakeReceived() []source.Change {
	s.receipts.mu.Lock()
	defer s.receipts.mu.Unlock()
	out := s.receipts.loaded
	s.receipts.loaded = nil
	return out
}
