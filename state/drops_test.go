package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func dropRecord(i int) *DropRecord {
	return &DropRecord{Time: time.Unix(int64(i), 0).UTC(), Direction: "ingress", Path: "bridged", Protocol: "TCP",
		Src: DropEndpoint{IP: "10.0.0.1", Port: 40000 + i, Pod: "default/a"}, Dst: DropEndpoint{IP: "10.0.0.2", Port: 80},
		Verdict: "drop", Reason: "no policy allows it", Policies: []string{"default/p"}}
}

// TestDropLogRotates writes far more than the bound: the files stay under
// it, and what is kept is the newest records, in order.
func TestDropLogRotates(t *testing.T) {
	s := New(t.TempDir())
	w, err := s.OpenDropLog(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		if err := w.Write(dropRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	var total int64
	files, _ := filepath.Glob(filepath.Join(s.Dir, dropsDir, "*"))
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 4096 {
			t.Errorf("%s is %d bytes, bound 4096", f, st.Size())
		}
		total += st.Size()
	}
	if len(files) != 3 || total > 3*4096 {
		t.Errorf("%d files, %d bytes; want 3 files of at most 4096", len(files), total)
	}
	var got []int
	if err := s.ReadDrops(func(r *DropRecord) { got = append(got, r.Src.Port-40000) }); err != nil {
		t.Fatal(err)
	}
	if len(got) < 20 || got[len(got)-1] != n-1 {
		t.Fatalf("kept %d records ending at %v; want the newest, ending at %d", len(got), got[len(got)-3:], n-1)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("records out of order or missing at %d: %v", i, got[i-1:i+1])
		}
	}
}

// TestFollowDropsAcrossRotation: a follower sees every record written
// after it started, in order, also those around a rotation.
func TestFollowDropsAcrossRotation(t *testing.T) {
	s := New(t.TempDir())
	w, err := s.OpenDropLog(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_ = w.Write(dropRecord(0)) // before the follower: not followed
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := make(chan int, 100)
	tail := s.TailDrops()
	go tail.Follow(ctx, 10*time.Millisecond, func(r *DropRecord) { seen <- r.Src.Port - 40000 })
	const n = 40 // ~250 bytes each: several rotations
	for i := 1; i <= n; i++ {
		if err := w.Write(dropRecord(i)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			time.Sleep(30 * time.Millisecond)
		}
	}
	for want := 1; want <= n; want++ {
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("followed record %d, want %d", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("record %d never followed", want)
		}
	}
}
