// Package plugin is the CNI plugin `netpol`, chained after bridge or
// flannel. On ADD it records the pod under dataDir and puts the pod's
// addresses into the sets the agent's index names for it (its dispatch
// groups and the peer sets that select it), so that when ADD returns the pod
// is protected and reachable exactly as its policies say. DEL undoes exactly
// that; CHECK reads the kernel back; GC and STATUS follow CNI 1.1.
//
// Nothing but the CNI result is written to stdout; logs go to a file under
// dataDir (or stderr).
package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
	"github.com/netpol/netpol/state"
)

// Kernel is what the plugin needs of the kernel edge (ipt.Runner).
type Kernel interface {
	Apply(ctx context.Context, rulesets []ipt.Ruleset) error
	AddEntries(ctx context.Context, entries []ipt.Entry) error
	DelEntries(ctx context.Context, entries []ipt.Entry) error
	DiffRendered(ctx context.Context, fam ipt.Family, hooks []ipt.RenderedHook, chains []ipt.RenderedChain) ([]string, error)
	ListEntries(ctx context.Context) (map[ipt.Entry]bool, error)
}

// Plugin carries what a CNI invocation needs, injected so tests can drive
// it with their own stdout and kernel.
type Plugin struct {
	Stdout io.Writer
	// NewKernel returns the kernel edge for an iptables mode.
	NewKernel func(mode string) (Kernel, error)
	// LockTimeout bounds the wait for the data directory lock.
	LockTimeout time.Duration
	// Timeout bounds one whole invocation.
	Timeout time.Duration
}

// Default returns the plugin as the binary runs it.
func Default() *Plugin {
	return &Plugin{
		Stdout: os.Stdout,
		NewKernel: func(mode string) (Kernel, error) {
			return ipt.NewRunner(ipt.Mode(mode))
		},
		LockTimeout: 60 * time.Second,
		Timeout:     2 * time.Minute,
	}
}

// Funcs returns the CNI verbs for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

// invocation is the state of one verb: config, store, logger, kernel.
type invocation struct {
	stdout io.Writer
	conf   *conf.NetConf
	store  *state.Store
	log    *slog.Logger
	kernel Kernel
	ctx    context.Context
	close  func()
	// start is when the invocation began; waited how long it waited for
	// the data directory lock (logged by ADD).
	start  time.Time
	waited time.Duration
}

// begin parses the config and opens the store, the log and the kernel.
func (p *Plugin) begin(args *skel.CmdArgs, verb string, requirePrev bool) (*invocation, error) {
	start := time.Now()
	nc, err := conf.Parse(args.StdinData, requirePrev)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	st := state.New(nc.DataDir)
	if err := st.Ensure(); err != nil {
		return nil, types.NewError(types.ErrIOFailure, err.Error(), "")
	}
	inv, err := p.open(args, verb, nc, st)
	if inv != nil {
		inv.start = start
	}
	return inv, err
}

// open opens the log and the kernel of one invocation.
func (p *Plugin) open(args *skel.CmdArgs, verb string, nc *conf.NetConf, st *state.Store) (*invocation, error) {
	logger, closeLog := openLog(nc)
	logger = logger.With("verb", verb, "containerID", args.ContainerID, "ifName", args.IfName)
	k, err := p.NewKernel(nc.IPTablesMode)
	if err != nil {
		closeLog()
		return nil, types.NewError(types.ErrInternal, "iptables mode "+nc.IPTablesMode, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	return &invocation{stdout: p.Stdout, conf: nc, store: st, log: logger, kernel: k, ctx: ctx,
		close: func() { cancel(); closeLog() }}, nil
}

// openLog opens the configured log file (stderr for "-" or when the file
// cannot be opened: a log problem never fails the pod).
func openLog(nc *conf.NetConf) (*slog.Logger, func()) {
	if nc.LogFile == "-" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), func() {}
	}
	_ = os.MkdirAll(filepath.Dir(nc.LogFile), 0o700)
	f, err := os.OpenFile(nc.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), func() {}
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { _ = f.Close() }
}

// locked runs f for one verb with the config parsed and the data directory
// lock held: every verb that reads or changes pod records or the kernel
// state does so under the lock the agent's syncs take too.
func (p *Plugin) locked(args *skel.CmdArgs, verb string, requirePrev bool, f func(*invocation) error) error {
	inv, err := p.begin(args, verb, requirePrev)
	if err != nil {
		return err
	}
	defer inv.close()
	asked := time.Now()
	unlock, err := inv.lock(p.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	inv.waited = time.Since(asked)
	return f(inv)
}

// lock takes the data directory lock, as a CNI error on failure.
func (inv *invocation) lock(timeout time.Duration) (func(), error) {
	unlock, err := inv.store.Lock(inv.ctx, timeout)
	if err != nil {
		return nil, types.NewError(types.ErrTryAgainLater, "data dir busy", err.Error())
	}
	return unlock, nil
}

// lockedIfInstalled is locked for a verb that only undoes (DEL, GC). A data
// directory without a lock file was never set up or was emptied by
// uninstall: nothing of ours is left to undo, so it returns nil at once and
// creates nothing there, not the directory, the lock, pods/ or the log.
func (p *Plugin) lockedIfInstalled(args *skel.CmdArgs, verb string, f func(*invocation) error) error {
	nc, err := conf.Parse(args.StdinData, false)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	st := state.New(nc.DataDir)
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	unlock, ok, err := st.LockExisting(ctx, p.LockTimeout)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, "data dir busy", err.Error())
	}
	if !ok {
		return nil
	}
	defer unlock()
	inv, err := p.open(args, verb, nc, st)
	if err != nil {
		return err
	}
	defer inv.close()
	return f(inv)
}

// attachments loads the pod records, logging each one found unusable and
// moved aside: its pod is unknown from now on (see state.Quarantined).
func (inv *invocation) attachments() ([]node.Attachment, error) {
	atts, bad, err := inv.store.Attachments()
	logQuarantined(inv.log, bad...)
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "read pod records", err.Error())
	}
	return atts, nil
}

// logQuarantined logs pod records moved aside as unusable.
func logQuarantined(log *slog.Logger, bad ...state.Quarantined) {
	for _, q := range bad {
		log.Warn("pod record unusable: moved aside; its pod is unknown to netpol until it is added again",
			"file", q.File, "err", q.Err)
	}
}

// kernelError wraps an error of the kernel edge once, at the boundary.
func kernelError(what string, err error) error {
	return types.NewError(types.ErrInternal, what, err.Error())
}

func errorf(code uint, format string, args ...any) error {
	return types.NewError(code, fmt.Sprintf(format, args...), "")
}
