package node

import (
	"slices"
	"testing"
)

func TestTableStringAndDiff(t *testing.T) {
	got := NewTable([]string{"a/x", "b/long-name"}, []string{"a/x", "b/long-name"}, true)
	got.Set("b/long-name", "a/x", false)
	want := "from\\to      a/x  b/long-name\n" +
		"a/x          .    .          \n" +
		"b/long-name  X    .          \n"
	if s := got.String(); s != want {
		t.Errorf("String() =\n%q\nwant\n%q", s, want)
	}

	expected := NewTable([]string{"b/long-name", "a/x"}, []string{"a/x", "b/long-name"}, true)
	expected.SetCol("a/x", false)
	wantDiff := []string{"a/x -> a/x: want denied, got allowed"}
	if d := got.Diff(expected); !slices.Equal(d, wantDiff) {
		t.Errorf("Diff = %q, want %q", d, wantDiff)
	}

	expected.Set("c/typo", "a/x", true)
	if d := got.Diff(expected); !slices.Contains(d, `row "c/typo" only in expected table`) {
		t.Errorf("Diff does not report the unknown row: %q", d)
	}
	if _, ok := got.Get("c/typo", "a/x"); ok {
		t.Error("Get of an unknown row reported ok")
	}
}
