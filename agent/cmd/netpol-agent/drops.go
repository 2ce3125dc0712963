package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// dropOptions are the agent's drop logging flags.
type dropOptions struct {
	group, rate, burst uint
	maxSize, files     int
	buffer             int
	stdout             bool
}

// addDropFlags declares the drop logging flags on fs, bound to d.
func addDropFlags(fs *flag.FlagSet, d *dropOptions) {
	def := policy.DefaultDropLog()
	fs.UintVar(&d.group, "drop-log-group", uint(def.Group), "NFLOG group the drop rules log to and the agent reads (0-65535)")
	fs.UintVar(&d.rate, "drop-log-rate", uint(def.Rate),
		fmt.Sprintf("drops logged per second, on average, by each drop rule (the kernel's limit match; 0 logs none, at most %d)", ipt.MaxLimit))
	fs.UintVar(&d.burst, "drop-log-burst", uint(def.Burst), "drops each drop rule logs at once before the rate applies")
	fs.IntVar(&d.maxSize, "drop-log-max-size", 10<<20, "bytes of dataDir/drops/drops.log before it is rotated")
	fs.IntVar(&d.files, "drop-log-files", 3, "rotated drop log files kept besides drops.log")
	fs.IntVar(&d.buffer, "drop-log-buffer", 1<<20, "receive buffer of the NFLOG socket in bytes (messages past it are lost, and counted)")
	fs.BoolVar(&d.stdout, "drop-log-stdout", false, "also print every drop record to standard output (for the node's log collector)")
}

// policy returns the rules' drop logging, or an error naming the flag.
func (d *dropOptions) policy() (*policy.DropLog, error) {
	if d.group > 65535 {
		return nil, fmt.Errorf("--drop-log-group %d: want 0-65535", d.group)
	}
	dl := &policy.DropLog{Group: uint16(d.group), Rate: int(min(d.rate, 1<<20)), Burst: int(min(d.burst, 1<<20))}
	if err := dl.Validate(); err != nil {
		return nil, fmt.Errorf("--drop-log-rate/--drop-log-burst: %w", err)
	}
	return dl, nil
}

// startDropLog reads the drop rules' NFLOG group until ctx ends. A failure
// (another reader holds the group) is logged: enforcement goes on without
// records.
func startDropLog(ctx context.Context, a *agent.Agent, d *dropOptions, log *slog.Logger) {
	if d.rate == 0 {
		return
	}
	opts := agent.DropLogOptions{Group: uint16(d.group), RecvBuf: d.buffer, MaxBytes: int64(d.maxSize), Keep: d.files}
	if d.stdout {
		opts.Echo = os.Stdout
	}
	go func() {
		if err := a.RunDropLog(ctx, opts); err != nil {
			log.Error("drop records stopped: drops are still enforced, not recorded", "group", d.group, "err", err)
		}
	}()
}

// drops implements `netpol-agent drops --data-dir D [--follow] [--pod
// ns/name]`: the drop records, oldest first, one JSON line each.
func drops(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("netpol-agent drops", flag.ContinueOnError)
	dataDir := fs.String("data-dir", conf.DefaultDataDir, "data directory of the agent")
	follow := fs.Bool("follow", false, "after the stored records, print new ones as the agent writes them, until interrupted")
	pod := fs.String("pod", "", "only records with this pod (namespace/name) at either end")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "netpol-agent drops: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	st := state.New(*dataDir)
	enc := json.NewEncoder(stdout)
	show := func(r *state.DropRecord) {
		if *pod == "" || r.Involves(*pod) {
			_ = enc.Encode(r)
		}
	}
	tail := st.TailDrops() // before reading, so that nothing falls between
	if err := st.ReadDrops(show); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent drops:", err)
		return 1
	}
	if !*follow {
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := tail.Follow(ctx, 200*time.Millisecond, show); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent drops:", err)
		return 1
	}
	return 0
}
