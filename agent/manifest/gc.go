package manifest

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// decodeGCPercent is the garbage collector's GOGC while Cache.Load decodes
// files. Decoding allocates ~65 bytes for each byte it reads (yaml.v2's
// tokens and nodes, the generic values, their JSON, the typed objects) and
// keeps ~2: at the default of 100 the heap goal stays a few MiB and the
// collector runs every few MiB allocated (35 cycles in a cold load of issue
// 10's 6 MiB world, about a fifth of the load's CPU); at 400, about 10.
const decodeGCPercent = 400

// decodeMemoryFloor is the least memory limit (debug.SetMemoryLimit) set
// while decoding, the guard on the higher GOGC: the heap collects when the
// Go runtime's memory reaches it, whatever GOGC would allow. With 96 MiB a
// cold `--once` of issue 10's world peaked at 104 to 107 MiB RSS (84 to 86
// at GOGC 100), and a running agent stays under its 150 MiB aim.
const decodeMemoryFloor = 96 << 20

// decodeMemoryPerByte is how much memory the limit allows per byte to
// decode, on top of what the process uses when decoding starts: twice what
// the decoded objects keep, so that the limit stays above the live heap
// (a limit under it would make the collector run without pause) however
// large the directory.
const decodeMemoryPerByte = 4

// gc holds the collector's settings from before the first of the decodes
// running now, restored when the last ends.
var gc struct {
	mu      sync.Mutex
	users   int
	kept    bool  // the user's GOGC is not the default: nothing is changed
	percent int   // GOGC before
	limit   int64 // memory limit before
	set     int64 // memory limit set now
}

// loosenGC sets GOGC to decodeGCPercent, with a memory limit of
// max(decodeMemoryFloor, memory in use + decodeMemoryPerByte × input,
// twice the memory in use), for decoding input bytes, and returns the
// function that restores both. The last term keeps the limit from
// collecting sooner than GOGC 100 would (at twice the live heap) when a
// running agent holding a large snapshot decodes one small file. Only the
// default GOGC (100) is loosened: a user's other GOGC (lower, higher or
// off) is kept as it is, and then no limit is set either; a memory limit
// below ours, set by the user (GOMEMLIMIT), is kept. Decodes may overlap:
// the first saves the settings, each raises the limit to what it needs,
// the last restores them.
func loosenGC(input int64) (restore func()) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.users == 0 {
		gc.percent = debug.SetGCPercent(decodeGCPercent)
		gc.kept = gc.percent != defaultGCPercent
		if gc.kept {
			debug.SetGCPercent(gc.percent)
		}
		gc.limit = debug.SetMemoryLimit(-1) // reads it
		gc.set = gc.limit
	}
	gc.users++
	if !gc.kept {
		inUse := memoryInUse()
		limit := min(max(decodeMemoryFloor, inUse+decodeMemoryPerByte*input, 2*inUse), gc.limit)
		if gc.users == 1 || limit > gc.set {
			gc.set = limit
			debug.SetMemoryLimit(limit)
		}
	}
	return func() {
		gc.mu.Lock()
		defer gc.mu.Unlock()
		if gc.users--; gc.users == 0 && !gc.kept {
			debug.SetGCPercent(gc.percent)
			debug.SetMemoryLimit(gc.limit)
		}
	}
}

// defaultGCPercent is the Go runtime's GOGC when the user sets none.
const defaultGCPercent = 100

// memoryInUse returns the memory the Go runtime holds from the system and
// has not released, what the memory limit counts.
func memoryInUse() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}
