package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/ipt"
)

// manifestsOnce is `--manifests DIR --once`: load (decoding only the files
// whose content differs from what the last run stored in the data
// directory), sync, and store the decoded files for the next run: they
// are encoded while the sync commits, and written under the data
// directory lock after it, only when it succeeded.
//
// The iptables backend is detected (ipt.Runner.Detect: a few
// iptables-legacy-save runs) while the manifests load: the whole process
// is in the node's network namespace, and no goroutine of it leaves it.
// When the manifests do not load, the detection is stopped and waited for
// before manifestsOnce returns.
func manifestsOnce(ctx context.Context, a *agent.Agent, o *options, log *slog.Logger) int {
	start := time.Now()
	detectCtx, stopDetect := context.WithCancel(ctx)
	defer stopDetect()
	detected := make(chan struct{})
	if d, ok := a.Kernel.(interface {
		Detect(context.Context) (ipt.Mode, error)
	}); ok {
		go func() {
			defer close(detected)
			_, _ = d.Detect(detectCtx) // a failure comes back from the sync's first command
		}()
	} else {
		close(detected)
	}
	src := &source.DirSource{Dir: o.manifests, Node: o.node, Store: a.Store}
	snap, err := src.Load(ctx)
	if err != nil {
		// No sync follows: the detection is stopped, and whatever it
		// concluded from commands cut short is never used.
		stopDetect()
		<-detected
		fmt.Fprintln(os.Stderr, "netpol-agent: invalid input:", err)
		return 1
	}
	st := src.Stats()
	log.Info("loaded manifests", "files", st.Files, "read", st.Read, "decoded", st.Decoded, "took", time.Since(start))
	a.NoteReceived(src)
	// The cache is encoded once the sync has compiled, while it commits:
	// beside the compile it would take CPU from it.
	var encoded chan encodedCache
	encode := func() {
		if encoded == nil {
			encoded = make(chan encodedCache, 1)
			go func() {
				data, err := src.EncodeCache()
				encoded <- encodedCache{data, err}
			}()
		}
	}
	a.BeforeCommit = encode
	rc := syncOnce(ctx, a, snap, log)
	a.BeforeCommit = nil
	if rc != 0 {
		if encoded != nil {
			<-encoded // nothing of the run outlives it
		}
		return rc
	}
	encode() // started already, unless the sync committed without a compile
	cache := <-encoded
	err = cache.err
	if err == nil && cache.data != nil {
		var unlock func()
		if unlock, err = a.Store.Lock(ctx, a.LockTimeout); err == nil {
			err = a.Store.WriteManifestCacheData(cache.data)
			unlock()
		}
	}
	if err != nil {
		log.Warn("store the decoded manifests for the next run", "err", err)
	}
	return 0
}

// encodedCache is the manifest cache a --once run stores after its sync,
// encoded while the sync commits (DirSource.EncodeCache).
type encodedCache struct {
	data []byte
	err  error
}
