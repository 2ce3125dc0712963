// Package kube is netpol-agent's Kubernetes API source: shared informers on
// Namespaces, Pods (of every node: remote pods are peers) and
// NetworkPolicies, whose objects are stripped to what the snapshot needs
// before they are cached, turned into a policy.Snapshot by the manifest
// loader's conversion rules.
//
// What differs from the manifest directory, and why:
//   - Pods not scheduled yet, pods in phase Succeeded or Failed (their
//     addresses may already belong to another pod), hostNetwork pods (they
//     are their node, see README) and pods of other nodes without addresses
//     yet are left out.
//   - An object the snapshot validation rejects is skipped, logged and
//     counted (Skipped), instead of rejecting the whole view: the API server
//     has validated it already, so a disagreement is a version skew of the
//     validation rules, and one such object must not freeze the policy of
//     the whole node. The manifest directory keeps rejecting all.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/policy"
)

// Options configure a Source.
type Options struct {
	// Node is this node's name: its pods get their addresses from CNI ADD.
	Node string
	// SyncTimeout bounds the first Load's wait for the informers' initial
	// lists (default 10 s); after it, Load returns source.ErrNotReady.
	SyncTimeout time.Duration
	// FailFast ends that wait at the first list or watch error: the
	// long-running agent then enforces its stored snapshot at once instead
	// of after SyncTimeout (--once keeps waiting, the API may come up).
	FailFast bool
	// Log receives API errors and skipped objects (default: discarded).
	Log *slog.Logger
}

// Source is the Kubernetes API as a source.Source, source.Notifier and
// source.Fresher.
type Source struct {
	opts      Options
	factory   informers.SharedInformerFactory
	informers []cache.SharedIndexInformer // namespaces, pods, policies
	tracker   *tracker
	notify    chan struct{}
	receipts  receipts // when each change arrived (TakeReceived)

	gen       atomic.Uint64 // bumped by every relevant event
	loadedGen uint64        // gen at the last successful Load
	loaded    bool
	waited    bool // the first Load waited for the initial lists

	checked map[string]verdict // validity of each object, by key (Load only)

	mu      sync.Mutex
	lastErr string // the informers' last list/watch error
	skipped int    // objects left out of the last Load as invalid
}

// New returns a source on the API server of cfg. Call Start before Load.
func New(cfg *rest.Config, opts Options) (*Source, error) {
	s := newSource(opts, 3) // current while the three informers' watches are open
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(s.tracker.wrap)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return s, s.init(client)
}

// NewForClient returns a source on client (tests use a fake clientset); its
// view counts as current whenever asked.
func NewForClient(client kubernetes.Interface, opts Options) (*Source, error) {
	s := newSource(opts, 0)
	return s, s.init(client)
}

func newSource(opts Options, watches int) *Source {
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Source{opts: opts, notify: make(chan struct{}, 1), tracker: newTracker(watches)}
}

func (s *Source) init(client kubernetes.Interface) error {
	s.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(strip))
	s.informers = []cache.SharedIndexInformer{
		s.factory.Core().V1().Namespaces().Informer(),
		s.factory.Core().V1().Pods().Informer(),
		s.factory.Networking().V1().NetworkPolicies().Informer(),
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.receipts.note(obj, false); s.changed() },
		UpdateFunc: func(old, cur any) {
			// A NetworkPolicy's every version is reported as in force
			// (status, wait), even one that changed only annotations.
			_, isPolicy := cur.(*networkingv1.NetworkPolicy)
			if isPolicy || !sameButVersion(old, cur) {
				s.receipts.note(cur, false)
				s.changed()
			}
		},
		DeleteFunc: func(obj any) { s.receipts.note(obj, true); s.changed() },
	}
	for _, inf := range s.informers {
		if err := inf.SetWatchErrorHandler(s.watchError); err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	return nil
}

// watchError records (and logs) why an informer could not list or watch.
func (s *Source) watchError(r *cache.Reflector, err error) {
	if errors.Is(err, io.EOF) {
		return // the watch closed normally
	}
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
	s.opts.Log.Warn("kubernetes API", "resource", r.TypeDescription(), "err", err)
}

// changed marks the view as changed and wakes the run loop.
func (s *Source) changed() {
	s.gen.Add(1)
	s.wake()
}

// wake signals Notify, without blocking.
func (s *Source) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Start starts the informers; they stop when ctx ends. Once their initial
// lists are in, Notify signals.
func (s *Source) Start(ctx context.Context) {
	s.factory.Start(ctx.Done())
	go func() {
		if s.waitSynced(ctx, 0, false) {
			s.wake() // Changed is true until the first Load
		}
	}()
}

// Shutdown waits for the informers to stop (after Start's ctx ended).
func (s *Source) Shutdown() { s.factory.Shutdown() }

// Synced reports whether every informer has its initial list.
func (s *Source) Synced() bool {
	for _, inf := range s.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// waitSynced waits until Synced, ctx ends, timeout passes (0: no
// timeout) or, with failFast, an informer reports an error.
func (s *Source) waitSynced(ctx context.Context, timeout time.Duration, failFast bool) bool {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !s.Synced() {
		if failFast && s.lastError() != "" {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
	return true
}

// lastError is the informers' last reported error, or else the last
// request that failed (the informers retry refused connections without
// reporting them).
func (s *Source) lastError() string {
	s.mu.Lock()
	err := s.lastErr
	s.mu.Unlock()
	if err == "" {
		err = s.tracker.lastFailure()
	}
	return err
}

// Notify signals changes (see source.Notifier).
func (s *Source) Notify() <-chan struct{} { return s.notify }

// CurrentAsOf is now while the informers' watches are connected, else when
// they last were (see source.Fresher).
func (s *Source) CurrentAsOf() time.Time { return s.tracker.currentAsOf() }

// Changed reports whether an event arrived since the last Load, or the
// initial lists completed since (see source.Source).
func (s *Source) Changed(context.Context) (bool, error) {
	if !s.Synced() {
		return false, nil
	}
	return !s.loaded || s.gen.Load() != s.loadedGen, nil
}

// Skipped is how many objects the last Load left out as invalid.
func (s *Source) Skipped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// Load builds the snapshot from the informers' caches. The first call
// waits up to Options.SyncTimeout for the initial lists; until they are in,
// it returns an error matching source.ErrNotReady with the last API error.
func (s *Source) Load(ctx context.Context) (*policy.Snapshot, error) {
	if !s.waited {
		s.waited = true
		s.waitSynced(ctx, s.opts.SyncTimeout, s.opts.FailFast)
	}
	if !s.Synced() {
		reason := s.lastError()
		if reason == "" {
			reason = "initial lists not complete"
		}
		return nil, fmt.Errorf("%w: kubernetes API: %s", source.ErrNotReady, reason)
	}
	gen := s.gen.Load()
	s.receipts.loading()
	snap, err := s.build()
	if err != nil {
		return nil, err
	}
	s.loadedGen, s.loaded = gen, true
	return snap, nil
}
