package manifest

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// gcSettings returns GOGC and the memory limit now.
func gcSettings() (int, int64) {
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// setGC sets GOGC and the memory limit, restoring the ones before at the
// end of the test.
func setGC(t *testing.T, percent int, limit int64) {
	oldPercent, oldLimit := debug.SetGCPercent(percent), debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })
}

// TestLoosenGC: while a decode runs, GOGC is decodeGCPercent and the memory
// limit at least decodeMemoryFloor and above the memory in use plus what
// the input may need; overlapping decodes restore the settings only when
// the last ends; a GOGC other than the default (higher, off) is the user's
// and kept, with no limit set; a lower memory limit of the user's is kept.
func TestLoosenGC(t *testing.T) {
	const big = 64 << 20 // bytes to decode: a limit above the floor
	tests := []struct {
		name         string
		percent      int
		limit        int64
		input        int64
		wantPercent  int
		wantLimitMin int64 // the limit set is at least this
		wantLimitMax int64 // and at most this
	}{
		{"defaults", 100, math.MaxInt64, 1 << 20, decodeGCPercent, decodeMemoryFloor, decodeMemoryFloor},
		{"a large input", 100, math.MaxInt64, big, decodeGCPercent, decodeMemoryPerByte * big, math.MaxInt64 - 1},
		{"GOGC higher: the user's, kept, no limit", 1000, math.MaxInt64, 1 << 20, 1000, math.MaxInt64, math.MaxInt64},
		{"GOGC off: the user's, kept, no limit", -1, math.MaxInt64, 1 << 20, -1, math.MaxInt64, math.MaxInt64},
		{"GOMEMLIMIT lower", 100, 32 << 20, 1 << 20, decodeGCPercent, 32 << 20, 32 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setGC(t, tt.percent, tt.limit)
			restore := loosenGC(tt.input)
			percent, limit := gcSettings()
			if percent != tt.wantPercent || limit < tt.wantLimitMin || limit > tt.wantLimitMax {
				t.Errorf("while decoding: GOGC %d, memory limit %d; want %d, limit in [%d, %d]",
					percent, limit, tt.wantPercent, tt.wantLimitMin, tt.wantLimitMax)
			}
			restore()
			if percent, limit := gcSettings(); percent != tt.percent || limit != tt.limit {
				t.Errorf("after: GOGC %d, memory limit %d; want %d, %d as before", percent, limit, tt.percent, tt.limit)
			}
		})
	}
}

// TestLoosenGCOverlapping: of two overlapping decodes, the larger's limit
// holds until both end, and the settings from before the first come back
// only when the last ends, in either order.
func TestLoosenGCOverlapping(t *testing.T) {
	for _, firstEndsFirst := range []bool{true, false} {
		setGC(t, 100, math.MaxInt64)
		first := loosenGC(1 << 20)
		second := loosenGC(64 << 20)
		if _, limit := gcSettings(); limit < decodeMemoryPerByte*64<<20 {
			t.Errorf("two decodes: memory limit %d, want at least the larger decode's %d", limit, decodeMemoryPerByte*64<<20)
		}
		if firstEndsFirst {
			first, second = second, first
		}
		first()
		if percent, _ := gcSettings(); percent != decodeGCPercent {
			t.Errorf("one decode still running: GOGC %d, want %d", percent, decodeGCPercent)
		}
		second()
		if percent, limit := gcSettings(); percent != 100 || limit != math.MaxInt64 {
			t.Errorf("both ended: GOGC %d, memory limit %d; want 100 and no limit", percent, limit)
		}
	}
}

// TestLoosenGCAboveTwiceInUse: with a large heap in use, a small decode's
// memory limit is at least twice the memory in use, not just above it: no
// collection sooner than GOGC 100 would make.
func TestLoosenGCAboveTwiceInUse(t *testing.T) {
	setGC(t, 100, math.MaxInt64)
	held := make([]byte, 80<<20)
	for i := range held {
		held[i] = byte(i)
	}
	restore := loosenGC(1 << 10)
	_, limit := gcSettings()
	restore()
	if limit < 2*int64(len(held)) {
		t.Errorf("memory limit %d with %d bytes held, want at least twice that", limit, len(held))
	}
	runtime.KeepAlive(held)
}

// TestLoosenGCKeepsUserGOGC (review): a user's GOGC is kept as set. A GOGC
// below ours (a user keeping the heap small) is not raised, and with GOGC
// off and no GOMEMLIMIT no memory limit is imposed (with GOGC off the limit
// is the only trigger: imposing one turns the collector on at 96 MiB).
// Fails on merge 5cf67d7: GOGC 50 becomes 400 while decoding, and GOGC off
// gets a 96 MiB limit.
func TestLoosenGCKeepsUserGOGC(t *testing.T) {
	for _, tt := range []struct {
		name    string
		percent int
	}{{"GOGC lower", 50}, {"GOGC off, no GOMEMLIMIT", -1}} {
		t.Run(tt.name, func(t *testing.T) {
			setGC(t, tt.percent, math.MaxInt64)
			restore := loosenGC(1 << 20)
			percent, limit := gcSettings()
			restore()
			if percent != tt.percent {
				t.Errorf("while decoding: GOGC %d, want the user's %d", percent, tt.percent)
			}
			if tt.percent < 0 && limit != math.MaxInt64 {
				t.Errorf("while decoding with GOGC off: memory limit %d, want none", limit)
			}
		})
	}
}
