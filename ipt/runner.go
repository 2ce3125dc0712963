package ipt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds every command a Runner starts when Runner.Timeout is
// zero. A restore of 50k rules takes about a second; the rest is margin for
// the shared xtables lock.
const DefaultTimeout = 2 * time.Minute

// Runner applies and reads back rulesets with the iptables, ip6tables and
// ipset binaries, in the network namespace the process runs in. It holds
// the detected mode and its memory of the last successful Apply (memory.go),
// which decides what the next Apply rewrites and which chains are stale. It
// is safe for concurrent use, but two syncs of the same sets should not
// overlap (the caller serializes them).
type Runner struct {
	// Mode picks the iptables backend; ModeAuto or "" detects it on first use.
	Mode Mode
	// NetNS, when set, runs every command as `ip netns exec NetNS ...` (tests
	// and tools that drive a namespace from outside it).
	NetNS string
	// Timeout bounds each command; DefaultTimeout when zero.
	Timeout time.Duration
	// Trace, when set, hears of every command the Runner started (its
	// binary and first argument) and how long it ran (benchmarks). Calls
	// come one at a time, though commands may run side by side.
	Trace func(command string, took time.Duration)

	traceMu sync.Mutex // serializes the calls of Trace
	// ipsetMu runs the Runner's exclusive ipset commands (ipsetExclusive)
	// one at a time, when the families apply side by side (forFamilies):
	// `ipset save` dumps every set, the other family's too, and the kernel
	// refuses to swap or destroy a set while it is dumped.
	ipsetMu sync.Mutex

	mu     sync.Mutex
	mode   Mode   // resolved Mode, set once
	memory memory // what the last successful Apply installed
	// restores counts the iptables-restore runs (each one nftables
	// transaction at most); applied is the rules proof of the last Apply
	// (proof.go), "" when it made none.
	restores uint32
	applied  string
}

// NewRunner returns a Runner for mode (ModeAuto, "", ModeNFT, ModeLegacy or
// ModePlain) in the process's network namespace. Detection, for ModeAuto,
// happens on first use.
func NewRunner(mode Mode) (*Runner, error) {
	switch mode {
	case "", ModeAuto, ModeNFT, ModeLegacy, ModePlain:
		return &Runner{Mode: mode}, nil
	}
	return nil, fmt.Errorf("%w: iptables mode %q (want auto, nft, legacy or plain)", ErrInvalid, string(mode))
}

// ExecError is a command that failed: its name and arguments, its stderr, and
// the error of the process.
type ExecError struct {
	Command string // binary and arguments, without the netns prefix
	Stderr  string
	Err     error
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Command, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + strings.Join(strings.Fields(s), " ")
	}
	return msg
}

func (e *ExecError) Unwrap() error { return e.Err }

// run starts name with args (under `ip netns exec` when NetNS is set), feeds
// it stdin, and returns its stdout. A failure is an *ExecError.
func (r *Runner) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{name}, args...)
	if r.NetNS != "" {
		argv = append([]string{"ip", "netns", "exec", r.NetNS}, argv...)
	}
	if name == "ipset" && ipsetExclusive(args, stdin) {
		r.ipsetMu.Lock()
		defer r.ipsetMu.Unlock()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r.trace(strings.Join(append([]string{name}, args[:min(len(args), 1)]...), " "), start)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return stdout.Bytes(), &ExecError{
			Command: strings.Join(append([]string{name}, args...), " "),
			Stderr:  stderr.String(),
			Err:     err,
		}
	}
	return stdout.Bytes(), nil
}

// Detect resolves the backend now, as the first command would (DetectMode
// for ModeAuto, once; a failure is tried again by the next command), so
// that a caller can overlap the detection with work of its own.
func (r *Runner) Detect(ctx context.Context) (Mode, error) { return r.backend(ctx) }

// backend returns the resolved mode, detecting it once.
func (r *Runner) backend(ctx context.Context) (Mode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mode != "" {
		return r.mode, nil
	}
	m := r.Mode
	switch m {
	case "", ModeAuto:
		var err error
		if m, err = DetectMode(ctx, r.NetNS); err != nil {
			return "", err
		}
	case ModeNFT, ModeLegacy, ModePlain:
	default:
		return "", fmt.Errorf("%w: iptables mode %q", ErrInvalid, string(m))
	}
	r.mode = m
	return m, nil
}

// iptables runs `iptables -w ARGS` (or ip6tables) of the backend.
func (r *Runner) iptables(ctx context.Context, fam Family, args ...string) ([]byte, error) {
	m, err := r.backend(ctx)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, nil, m.binary(fam, ""), append([]string{"-w"}, args...)...)
}

// saveFilter returns `iptables-save -t filter` of fam, parsed.
func (r *Runner) saveFilter(ctx context.Context, fam Family) (*savedTable, error) {
	m, err := r.backend(ctx)
	if err != nil {
		return nil, err
	}
	out, err := r.run(ctx, nil, m.binary(fam, "-save"), "-t", "filter")
	if err != nil {
		return nil, err
	}
	return parseSave(string(out)), nil
}

// ipsetExclusive reports whether the ipset command args (with stdin) must
// run alone, under ipsetMu: every one but an `ipset -exist restore` whose
// every line creates a set, or adds or deletes a member. A dump must not
// overlap a swap or a destroy, which the kernel refuses while a set is
// dumped; a create, add or del it takes at any time, from any number of
// processes, so the families' growths run side by side.
func ipsetExclusive(args []string, stdin []byte) bool {
	if len(args) != 2 || args[0] != "-exist" || args[1] != "restore" {
		return true
	}
	for line := range bytes.Lines(stdin) {
		verb, _, found := bytes.Cut(line, []byte(" "))
		if !found || exclusiveVerb(string(verb)) {
			return true
		}
	}
	return false
}

// exclusiveVerb reports whether a restore line of verb makes the restore
// exclusive: every verb but create, add and del.
func exclusiveVerb(verb string) bool { return verb != "create" && verb != "add" && verb != "del" }

// restore feeds input to `iptables-restore -w --noflush` of fam. A failure
// is a *RestoreError.
func (r *Runner) restore(ctx context.Context, fam Family, input []byte) error {
	m, err := r.backend(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.restores++
	r.mu.Unlock()
	_, err = r.run(ctx, input, m.binary(fam, "-restore"), "-w", "--noflush")
	return asRestoreError(err, input)
}

// ipsetRestore feeds input to `ipset -exist restore`. A failure is a
// *RestoreError. Empty input starts no process. In the process's own
// network namespace (NetNS empty) the input goes to the kernel over
// netlink from this process (netlinkRestore), and the ipset binary runs
// only for what that path refuses before changing anything.
func (r *Runner) ipsetRestore(ctx context.Context, input []byte) error {
	if len(input) == 0 {
		return nil
	}
	if r.NetNS == "" {
		if err := r.ipsetNetlink(ctx, input); !errors.Is(err, errNoNetlink) {
			return err
		}
	}
	_, err := r.run(ctx, input, "ipset", "-exist", "restore")
	return asRestoreError(err, input)
}

// ipsetNetlink is netlinkRestore of input, under ipsetMu when the input is
// exclusive (as ipsetExclusive says of it: a line other than create, add
// or del), heard by Trace as "ipset netlink" when it ran.
func (r *Runner) ipsetNetlink(ctx context.Context, input []byte) error {
	ops, ok := parseRestore(input)
	if !ok {
		return errNoNetlink
	}
	if slices.ContainsFunc(ops, func(op ipsetOp) bool { return exclusiveVerb(op.verb) }) {
		r.ipsetMu.Lock()
		defer r.ipsetMu.Unlock()
	}
	start := time.Now()
	err := netlinkRestoreOps(ctx, input, ops)
	if !errors.Is(err, errNoNetlink) {
		r.trace("ipset netlink", start)
	}
	return err
}

// trace tells Trace, when set, of command, which started at start.
func (r *Runner) trace(command string, start time.Time) {
	if r.Trace == nil {
		return
	}
	took := time.Since(start)
	r.traceMu.Lock()
	defer r.traceMu.Unlock()
	r.Trace(command, took)
}

// listSetNames returns the names of all sets. Equivalent to: `ipset list -n`.
func (r *Runner) listSetNames(ctx context.Context) (map[string]bool, error) {
	out, err := r.run(ctx, nil, "ipset", "list", "-n")
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool)
	for _, n := range strings.Fields(string(out)) {
		names[n] = true
	}
	return names, nil
}
