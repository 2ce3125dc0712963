package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/policy/testsnap"
)

// splitBoth splits data with rawDocuments and with readYAMLDocuments (the
// reference, utilyaml.YAMLReader) and reports how they differ, and whether
// splitYAML took data.
func splitBoth(data []byte) (diff string, fast bool) {
	type result struct {
		Docs []string
		Err  string
	}
	var out [2]result
	for i, split := range []func([]byte) ([][]byte, error){
		func(d []byte) ([][]byte, error) { return rawDocuments(d, false) },
		readYAMLDocuments,
	} {
		docs, err := split(data)
		for _, d := range docs {
			out[i].Docs = append(out[i].Docs, string(d))
		}
		if err != nil {
			out[i].Err = err.Error()
		}
	}
	_, fast = splitYAML(data)
	return cmp.Diff(out[1], out[0]), fast
}

// oddSplits are files near the edges of splitYAML: separators with and
// without comments, white space or text after them, at the start, twice,
// last; line ends YAMLReader rewrites; lines as long as its buffer.
var oddSplits = []string{
	"",
	"\n",
	"---\n",
	"---\n---\n",
	"a: 1\n",
	"a: 1",
	"---\na: 1\n---\nb: 2\n",
	"a: 1\n---\n\n---\nb: 2\n---\n",
	"a: 1\n--- # next\nb: 2\n",
	"a: 1\n---   \t\nb: 2\n",
	"a: 1\n---\u00a0\nb: 2\n",
	"a: 1\n--- b: 2\n",
	"a: 1\n---b\n",
	"a: 1\n----\nb: 2\n",
	"a: 1\n ---\nb: 2\n",
	"a: 1\n...\n---\nb: 2\n",
	"a: 1\r\n---\r\nb: 2\r\n",
	"a: 1\n---\nb: 2\r",
	"a: 1\r---\nb: 2\n",
	"a: |\n  x\n  ---\n  y\n---\nb: 2\n",
	"a: 1\n---" + "\n",
	"a: 1\n---",
	"x: " + strings.Repeat("y", 4093),
	"x: " + strings.Repeat("y", 4093) + "\n",
	"a: 1\n---\nx: " + strings.Repeat("y", 8189),
	"a: 1\n---\nx: " + strings.Repeat("y", 5000) + "\n---\n",
	"x: " + strings.Repeat("y", 4092) + "\r\n",
}

// TestSplitYAMLIsYAMLReader: every YAML file of testdata, issue 10's world
// and oddSplits is split into the documents (or the error) YAMLReader
// gives, and splitYAML takes every file of the world.
func TestSplitYAMLIsYAMLReader(t *testing.T) {
	files, world := testdataAndWorld(t, "*.y*ml", -1)
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		diff, fast := splitBoth(data)
		if diff != "" {
			t.Errorf("%s: rawDocuments (+) differs from YAMLReader (-):\n%s", file, diff)
		}
		if !fast && filepath.Dir(file) == world {
			t.Errorf("%s: not split by splitYAML", file)
		}
	}
	for i, data := range oddSplits {
		if diff, _ := splitBoth([]byte(data)); diff != "" {
			t.Errorf("odd file %d %q:\nrawDocuments (+) differs from YAMLReader (-):\n%s", i, data, diff)
		}
	}
}

// FuzzSplitYAML: rawDocuments splits any file into the documents (or the
// error) YAMLReader gives.
func FuzzSplitYAML(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.y*ml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	for _, data := range oddSplits {
		f.Add([]byte(data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if diff, _ := splitBoth(data); diff != "" {
			t.Errorf("rawDocuments (+) differs from YAMLReader (-):\n%s", diff)
		}
	})
}

// BenchmarkSplitYAML splits the files of issue 10's world with splitYAML and
// with YAMLReader in turn, and reports the time of each per MiB and their
// ratio (split/reader).
func BenchmarkSplitYAML(b *testing.B) {
	_, data := issue10Files(b)
	size := 0
	for _, d := range data {
		size += len(d)
	}
	var spent [2]time.Duration
	rounds := 0
	for b.Loop() {
		for i, split := range []func([]byte) ([][]byte, error){
			func(d []byte) ([][]byte, error) { return rawDocuments(d, false) },
			readYAMLDocuments,
		} {
			start := time.Now()
			for _, d := range data {
				if _, err := split(d); err != nil {
					b.Fatal(err)
				}
			}
			spent[i] += time.Since(start)
		}
		rounds++
	}
	mib := float64(size) / (1 << 20) * float64(rounds)
	b.ReportMetric(spent[0].Seconds()*1e3/mib, "split-ms/MiB")
	b.ReportMetric(spent[1].Seconds()*1e3/mib, "reader-ms/MiB")
	b.ReportMetric(float64(spent[0])/float64(spent[1]), "split/reader")
}

// issue10Files writes issue 10's world as YAML manifests and returns the
// files' names and contents, in the order written.
func issue10Files(tb testing.TB) (names []string, data [][]byte) {
	tb.Helper()
	dir := tb.TempDir()
	names, err := testsnap.Generate(testsnap.Issue10("node-a")).WriteYAMLManifests(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names {
		d, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		data = append(data, d)
	}
	return names, data
}

// testdataAndWorld returns the testdata files that match glob, then the
// first n files (all when n < 0) of issue 10's world written as YAML
// manifests into world.
func testdataAndWorld(t *testing.T, glob string, n int) (files []string, world string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*", glob))
	if err != nil {
		t.Fatal(err)
	}
	world = t.TempDir()
	names, err := testsnap.Generate(testsnap.Issue10("node-a")).WriteYAMLManifests(world)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 {
		names = names[:n]
	}
	for _, name := range names {
		files = append(files, filepath.Join(world, name))
	}
	return files, world
}
