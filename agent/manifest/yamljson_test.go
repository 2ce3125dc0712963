package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	goyaml "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/netpol/netpol/policy/testsnap"
)

// yamlSeeds are documents whose JSON needs care: escapes, non-ASCII and
// invalid UTF-8, keys that are not strings (1 and "1" in one map),
// numbers of every kind, anchors, merge keys, nulls, empty collections,
// a duplicate key.
var yamlSeeds = []string{
	"a: 1\nb: -2\nc: 1.5\nd: 1e3\ne: 0x1F\nf: 0o17\ng: .inf\nh: -.inf\ni: .nan\nj: 18446744073709551615\nk: 9223372036854775808\n",
	"s: \"<a & b>\"\nt: 'quote \" and \\\\ back'\nu: \"tab\\there\\nline\\u2028sep\"\nv: \"é ü 漢\"\nw: \"\\xff\\xfe\"\n",
	"yes: no\non: off\ny: n\nnull: ~\nempty: \"\"\n",
	"1: one\n\"1\": also one\n",
	"1: one\n2.5: x\ntrue: t\n",
	"? [a, b]\n: complex\n",
	"base: &b {x: 1, y: [1, 2, {z: null}]}\nuse: *b\nmerged: {<<: *b, x: 2}\n",
	"list: []\nmap: {}\nnested: [[], {}, [[]], {a: {}}]\n",
	"a: 1\na: 2\n",
	"- just\n- a\n- sequence\n",
	"plain scalar\n",
	"~\n",
	"",
	"# only a comment\n",
	"t: 2001-12-14t21:59:43.10-05:00\nd: 2002-12-14\nbin: !!binary aGVsbG8=\n",
	"k: !!str 123\nf: !!float 1\ni: !!int \"7\"\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: x, \"k8s.io/part-of\": y}}\nspec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}\n",
	"a: [1, 2\n",
	"\t bad: indent\n",
}

// sameAsLibrary fails t unless yamlToJSON gives yaml.YAMLToJSONStrict's
// output and error for doc, or refuses a map whose keys the library would
// make one string (it needs a key that is not a string).
func sameAsLibrary(t *testing.T, doc []byte) {
	t.Helper()
	want, werr := yaml.YAMLToJSONStrict(doc)
	got, gerr := yamlToJSON(doc)
	if gerr != nil && strings.Contains(gerr.Error(), "two keys of one map") {
		var v any
		if err := goyaml.UnmarshalStrict(doc, &v); err != nil || !hasOtherKey(v) {
			t.Fatalf("%q: refused as %v, but no map has a key that is not a string", doc, gerr)
		}
		return
	}
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%q: error %v, the library's %v", doc, gerr, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%q:\n got  %s\n want %s", doc, got, want)
	}
}

// hasOtherKey reports whether a map in v, a generic YAML value, has two
// keys or more, one of them not a string.
func hasOtherKey(v any) bool {
	switch v := v.(type) {
	case []any:
		return slices.ContainsFunc(v, hasOtherKey)
	case map[any]any:
		for k, e := range v {
			if _, ok := k.(string); (!ok && len(v) > 1) || hasOtherKey(e) {
				return true
			}
		}
	}
	return false
}

// TestYAMLToJSONRefusesKeysThatCollide: two keys that the library would
// both write as one JSON key, of which it keeps either value, are refused
// with the key named.
func TestYAMLToJSONRefusesKeysThatCollide(t *testing.T) {
	for _, doc := range []string{"1: a\n\"1\": b\n", "x: {true: 1, \"true\": 2}\n", "- {2.5: a, \"2.5\": a}\n"} {
		_, err := yamlToJSON([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "two keys of one map") {
			t.Errorf("%q: %v, want the two keys refused", doc, err)
		}
	}
	if _, err := yamlToJSON([]byte("1: a\n2: b\n")); err != nil {
		t.Errorf("integer keys that do not collide: %v", err)
	}
}

// FuzzYAMLToJSON: yamlToJSON is the library's YAMLToJSONStrict for any
// document.
func FuzzYAMLToJSON(f *testing.F) {
	for _, s := range yamlSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.y*ml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(sameAsLibrary)
}

// TestYAMLToJSONWorld: every document of a generated world (the agent
// benchmarks' files) converts as the library converts it.
func TestYAMLToJSONWorld(t *testing.T) {
	docs := worldDocuments(t, testsnap.Config{Seed: 7, Node: "node-1", Nodes: 4, Namespaces: 6, Pods: 300, LocalPods: 10, Policies: 60}, 0)
	for _, doc := range docs {
		sameAsLibrary(t, doc)
	}
	if len(docs) < 300 {
		t.Errorf("compared %d documents, want at least the world's 300 pods", len(docs))
	}
}

// worldDocuments returns the YAML documents of the manifests of the world
// cfg generates, of its first files files (all when 0).
func worldDocuments(tb testing.TB, cfg testsnap.Config, files int) [][]byte {
	tb.Helper()
	dir := tb.TempDir()
	names, err := testsnap.Generate(cfg).WriteYAMLManifests(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if files > 0 {
		names = names[:min(len(names), files)]
	}
	var docs [][]byte
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		split, err := readYAMLDocuments(data)
		if err != nil {
			tb.Fatal(err)
		}
		docs = append(docs, split...)
	}
	return docs
}

// BenchmarkYAMLToJSON converts the documents of ten of issue 10's files
// (pods) with the library and with yamlToJSON, in turn, three rounds:
// MB/s of YAML.
func BenchmarkYAMLToJSON(b *testing.B) {
	docs := worldDocuments(b, testsnap.Issue10("node-1"), 10)
	size := 0
	for _, d := range docs {
		size += len(d)
	}
	convs := []struct {
		name string
		fn   func([]byte) ([]byte, error)
	}{{"library", yaml.YAMLToJSONStrict}, {"netpol", yamlToJSON}}
	for round := range 3 {
		for _, conv := range convs {
			b.Run(fmt.Sprintf("round=%d/%s", round+1, conv.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					for _, d := range docs {
						if _, err := conv.fn(d); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
