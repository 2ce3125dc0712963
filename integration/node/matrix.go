package node

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MatrixParallelism bounds the probes a Matrix runs at once.
const MatrixParallelism = 32

// Table is a reachability truth table: Allowed[i][j] says whether From[i]
// reached To[j].
type Table struct {
	From    []string
	To      []string
	Allowed [][]bool
}

// NewTable returns a table with every cell set to allowed.
func NewTable(from, to []string, allowed bool) *Table {
	t := &Table{From: slices.Clone(from), To: slices.Clone(to)}
	for range from {
		t.Allowed = append(t.Allowed, repeat(allowed, len(to)))
	}
	return t
}

// Labels returns the labels of hosts, in order.
func Labels[H Host](hosts []H) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Label()
	}
	return out
}

// Matrix probes every pair (from, to) concurrently, at most
// MatrixParallelism at a time, each with Probe and DefaultProbeTimeout.
func Matrix[F, T Host](from []F, to []T, proto string, port int) *Table {
	return MatrixTimeout(from, to, proto, port, DefaultProbeTimeout)
}

// MatrixTimeout is Matrix with a chosen per-attempt timeout.
func MatrixTimeout[F, T Host](from []F, to []T, proto string, port int, timeout time.Duration) *Table {
	t := NewTable(Labels(from), Labels(to), false)
	sem := make(chan struct{}, MatrixParallelism)
	var wg sync.WaitGroup
	for i, f := range from {
		for j, d := range to {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				t.Allowed[i][j] = Probe(f, d.Addr(), proto, port, timeout)
			}()
		}
	}
	wg.Wait()
	return t
}

// Set sets one cell, adding the row or column if it is missing (so a typo
// shows up in Diff instead of being lost).
func (t *Table) Set(from, to string, allowed bool) {
	t.Allowed[t.row(from)][t.col(to)] = allowed
}

// SetRow sets every cell of a source: its egress.
func (t *Table) SetRow(from string, allowed bool) {
	i := t.row(from)
	for j := range t.To {
		t.Allowed[i][j] = allowed
	}
}

// SetCol sets every cell of a destination: its ingress.
func (t *Table) SetCol(to string, allowed bool) {
	j := t.col(to)
	for i := range t.From {
		t.Allowed[i][j] = allowed
	}
}

// Get returns a cell; ok is false when the row or column does not exist.
func (t *Table) Get(from, to string) (allowed, ok bool) {
	i, j := slices.Index(t.From, from), slices.Index(t.To, to)
	if i < 0 || j < 0 {
		return false, false
	}
	return t.Allowed[i][j], true
}

// Diff lists the cells where t (what was observed) differs from want, by
// label, plus rows and columns present in only one of them. It is empty
// when the tables agree.
func (t *Table) Diff(want *Table) []string {
	var out []string
	for _, f := range want.From {
		if !slices.Contains(t.From, f) {
			out = append(out, fmt.Sprintf("row %q only in expected table", f))
		}
	}
	for _, f := range t.From {
		if !slices.Contains(want.From, f) {
			out = append(out, fmt.Sprintf("row %q missing from expected table", f))
		}
	}
	for _, d := range want.To {
		if !slices.Contains(t.To, d) {
			out = append(out, fmt.Sprintf("column %q only in expected table", d))
		}
	}
	for _, d := range t.To {
		if !slices.Contains(want.To, d) {
			out = append(out, fmt.Sprintf("column %q missing from expected table", d))
		}
	}
	for i, f := range t.From {
		for j, d := range t.To {
			w, ok := want.Get(f, d)
			if ok && w != t.Allowed[i][j] {
				out = append(out, fmt.Sprintf("%s -> %s: want %s, got %s", f, d, verdict(w), verdict(t.Allowed[i][j])))
			}
		}
	}
	return out
}

// String renders an aligned grid: rows are sources, columns destinations,
// "." allowed and "X" denied.
func (t *Table) String() string {
	w := len("from\\to")
	for _, f := range t.From {
		w = max(w, len(f))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s", w, "from\\to")
	for _, d := range t.To {
		fmt.Fprintf(&b, "  %s", d)
	}
	b.WriteString("\n")
	for i, f := range t.From {
		fmt.Fprintf(&b, "%-*s", w, f)
		for j, d := range t.To {
			c := "X"
			if t.Allowed[i][j] {
				c = "."
			}
			fmt.Fprintf(&b, "  %-*s", len(d), c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (t *Table) row(from string) int {
	if i := slices.Index(t.From, from); i >= 0 {
		return i
	}
	t.From = append(t.From, from)
	t.Allowed = append(t.Allowed, repeat(false, len(t.To)))
	return len(t.From) - 1
}

func (t *Table) col(to string) int {
	if j := slices.Index(t.To, to); j >= 0 {
		return j
	}
	t.To = append(t.To, to)
	for i := range t.Allowed {
		t.Allowed[i] = append(t.Allowed[i], false)
	}
	return len(t.To) - 1
}

func repeat(v bool, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func verdict(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}
