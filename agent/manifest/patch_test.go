package manifest

import (
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/netpol/netpol/policy/testsnap"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// patchWorld is a manifest directory kept as documents per file, edited
// by the test and written back (dated an hour ago, so that stat is
// trusted).
type patchWorld struct {
	t     *testing.T
	dir   string
	files map[string][]string // name -> YAML documents
	r     *rand.Rand
}

func newPatchWorld(t *testing.T) *patchWorld {
	cluster := testsnap.Generate(testsnap.Config{Seed: 5, Node: "node-1", Nodes: 4, Namespaces: 6, Pods: 240,
		LocalPods: 10, Policies: 40})
	w := &patchWorld{t: t, dir: t.TempDir(), files: map[string][]string{}, r: rand.New(rand.NewSource(7))}
	names, err := cluster.WriteYAMLManifests(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(w.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w.files[name] = strings.Split(strings.TrimPrefix(string(data), "---\n"), "---\n")
		writeOld(t, filepath.Join(w.dir, name), string(data))
	}
	return w
}

// write writes every file whose content changed and removes those gone.
func (w *patchWorld) write() {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := w.files[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(w.dir, e.Name())); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	for name, docs := range w.files {
		content := "---\n" + strings.Join(docs, "---\n")
		path := filepath.Join(w.dir, name)
		if old, err := os.ReadFile(path); err == nil && string(old) == content {
			continue
		}
		writeOld(w.t, path, content)
	}
}

// pick returns a random file name and the index of a random document of
// it (-1 when it has none).
func (w *patchWorld) pick() (string, int) {
	names := slices.Sorted(maps.Keys(w.files))
	name := names[w.r.Intn(len(names))]
	if len(w.files[name]) == 0 {
		return name, -1
	}
	return name, w.r.Intn(len(w.files[name]))
}

// edit changes a document's object: f gets its decoded form.
func (w *patchWorld) edit(doc string, f func(obj map[string]any)) string {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		w.t.Fatal(err)
	}
	if obj == nil {
		return doc // a comment
	}
	f(obj)
	out, err := yaml.Marshal(obj)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(out)
}

func metadata(obj map[string]any) map[string]any {
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	return md
}

// step makes one random edit and says which; valid false when it makes
// the directory invalid (a name twice, a bad label).
func (w *patchWorld) step(n int) (what string, valid bool) {
	name, i := w.pick()
	docs := w.files[name]
	switch op := w.r.Intn(9); {
	case op == 0 && i >= 0: // relabel an object
		docs[i] = w.edit(docs[i], func(obj map[string]any) {
			md := metadata(obj)
			labels, _ := md["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
			}
			labels["edit"] = fmt.Sprint(n)
			md["labels"] = labels
		})
		return "relabel " + name, true
	case op == 1 && i >= 0: // remove a document
		w.files[name] = slices.Delete(docs, i, i+1)
		return "remove a document of " + name, true
	case op == 2 && i >= 0: // a copy of a document under a new name
		w.files[name] = append(docs, w.edit(docs[i], func(obj map[string]any) {
			metadata(obj)["name"] = fmt.Sprintf("new-%d", n)
		}))
		return "add a document to " + name, true
	case op == 3 && i >= 0: // move a document to another file
		to, _ := w.pick()
		doc := docs[i]
		w.files[name] = slices.Delete(docs, i, i+1)
		w.files[to] = append(w.files[to], doc)
		return "move a document of " + name + " to " + to, true
	case op == 4: // remove a file
		delete(w.files, name)
		return "remove " + name, true
	case op == 5: // a new file: a namespace and a pod in it
		ns := fmt.Sprintf("extra-%d", n)
		w.files[fmt.Sprintf("%s.yaml", ns)] = []string{
			fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {team: x}\n", ns),
			fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: %s\nspec:\n  nodeName: node-2\n  containers: [{name: c, image: i}]\nstatus:\n  podIP: 10.9.0.%d\n", ns, n%250),
			"# only a comment\n",
		}
		return "add a file", true
	case op == 6: // rename a file
		w.files["zz-"+name] = docs
		delete(w.files, name)
		return "rename " + name, true
	case op == 7 && i >= 0: // the same object twice
		to, _ := w.pick()
		w.files[to] = append(w.files[to], docs[i])
		return "copy a document of " + name + " to " + to, strings.HasPrefix(docs[i], "#")
	case op == 8 && i >= 0 && !strings.HasPrefix(docs[i], "#"): // an invalid object
		docs[i] = w.edit(docs[i], func(obj map[string]any) {
			metadata(obj)["labels"] = map[string]any{"bad key!": "x"}
		})
		return "invalid labels in " + name, false
	}
	return "nothing", true
}

// A Load that patches the last snapshot with the changed documents gives
// what a full Load of the directory gives, through a sequence of edits,
// additions, removals, moves and renames, and invalid states in between:
// the same snapshot, deeply equal (nil and empty apart), or the same error.
func TestCachePatchMatchesFullLoad(t *testing.T) {
	w := newPatchWorld(t)
	c := NewCache("node-1")
	if _, err := c.Load(w.dir); err != nil {
		t.Fatal(err)
	}
	patched := 0
	for n := range 120 {
		saved := map[string][]string{}
		for name, docs := range w.files {
			saved[name] = slices.Clone(docs)
		}
		what, valid := w.step(n)
		w.write()
		got, err := c.Load(w.dir)
		want, wantErr := Load(w.dir, "node-1")
		switch {
		case (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()):
			t.Fatalf("step %d (%s): Cache.Load error %v, full Load error %v", n, what, err, wantErr)
		case wantErr == nil && !reflect.DeepEqual(want, got):
			t.Fatalf("step %d (%s): Cache.Load differs from a full Load (-full +cache):\n%s", n, what, cmp.Diff(want, got))
		case (wantErr == nil) != valid:
			t.Fatalf("step %d (%s): error %v, want valid %v", n, what, wantErr, valid)
		case err == nil && !c.patched:
			t.Errorf("step %d (%s): the snapshot was built whole, not patched", n, what)
		}
		if err != nil {
			w.files = saved // back to the last valid directory
			w.write()
			continue
		}
		patched++
	}
	if patched < 60 {
		t.Errorf("only %d of 120 loads patched", patched)
	}
}

// patchSorted deletes, inserts and replaces by key, and refuses a key
// twice or a deletion of a key it does not hold.
func TestPatchSorted(t *testing.T) {
	type kv struct{ k, v string }
	order := func(x, y *kv) int { return strings.Compare(x.k, y.k) }
	base := []kv{{"b", "1"}, {"d", "1"}, {"f", "1"}}
	tests := []struct {
		name     string
		del, add []kv
		want     []kv
		ok       bool
	}{
		{"nothing", nil, nil, base, true},
		{"replace", []kv{{"d", ""}}, []kv{{"d", "2"}}, []kv{{"b", "1"}, {"d", "2"}, {"f", "1"}}, true},
		{"insert at both ends and between", nil, []kv{{"g", "2"}, {"a", "2"}, {"c", "2"}, {"e", "2"}},
			[]kv{{"a", "2"}, {"b", "1"}, {"c", "2"}, {"d", "1"}, {"e", "2"}, {"f", "1"}, {"g", "2"}}, true},
		{"delete first and last", []kv{{"f", ""}, {"b", ""}}, nil, []kv{{"d", "1"}}, true},
		{"delete all", []kv{{"f", ""}, {"b", ""}, {"d", ""}}, nil, nil, true},
		{"delete and insert around", []kv{{"b", ""}, {"d", ""}}, []kv{{"c", "2"}, {"a", "2"}, {"e", "2"}},
			[]kv{{"a", "2"}, {"c", "2"}, {"e", "2"}, {"f", "1"}}, true},
		{"replace all", []kv{{"b", ""}, {"d", ""}, {"f", ""}}, []kv{{"b", "2"}, {"d", "2"}, {"f", "2"}},
			[]kv{{"b", "2"}, {"d", "2"}, {"f", "2"}}, true},
		{"add a key there", nil, []kv{{"d", "2"}}, nil, false},
		{"add a key twice", nil, []kv{{"c", "2"}, {"c", "3"}}, nil, false},
		{"delete a key not there", []kv{{"c", ""}}, nil, nil, false},
		{"delete a key twice", []kv{{"d", ""}, {"d", ""}}, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sorted := slices.Clone(base)
			got, ok := patchSorted(sorted, tt.del, tt.add, order)
			if ok != tt.ok || (ok && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("patchSorted = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
			if !reflect.DeepEqual(sorted, base) {
				t.Errorf("patchSorted changed its input: %v", sorted)
			}
		})
	}
}

// BenchmarkCacheLoadLabel is a running agent's Load after one pod label
// changed in issue 10's world (150 files, 10,110 pods, 1,000 policies):
// the file's stat, read and hash, the one document decoded, the snapshot
// patched. The label is set and removed in turn.
func BenchmarkCacheLoadLabel(b *testing.B) {
	dir := b.TempDir()
	cluster := testsnap.Generate(testsnap.Issue10("node-1"))
	names, err := cluster.WriteYAMLManifests(dir)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, names[1]) // the first namespace's first pods
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	orig := string(data)
	edited := strings.Replace(orig, "  labels:\n", "  labels:\n    edited: \"yes\"\n", 1)
	if edited == orig {
		b.Fatalf("%s has no labels to edit", names[1])
	}
	c := NewCache("node-1")
	if _, err := c.Load(dir); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		writeOld(b, path, []string{edited, orig}[i%2])
		b.StartTimer()
		if _, err := c.Load(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheLoadWarm is `--once`'s load when nothing changed since the
// last run, on issue 10's world: manifests.cache read and decoded, every
// file read and hashed, the snapshot built from the stored objects.
func BenchmarkCacheLoadWarm(b *testing.B) {
	dir := b.TempDir()
	world := testsnap.Generate(testsnap.Issue10("node-1"))
	if _, err := world.WriteYAMLManifests(dir); err != nil {
		b.Fatal(err)
	}
	st := state.New(b.TempDir())
	c := NewCache("node-1")
	if _, err := c.Load(dir); err != nil {
		b.Fatal(err)
	}
	data, err := cluster.EncodeManifestCache(c.Stored())
	if err == nil {
		err = st.WriteManifestCacheData(data)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		stored, err := cluster.ReadManifestCache(st)
		if err != nil {
			b.Fatal(err)
		}
		c := NewCache("node-1")
		c.Seed(stored)
		if _, err := c.Load(dir); err != nil {
			b.Fatal(err)
		}
		if c.Stats().Decoded != 0 {
			b.Fatalf("decoded %d files", c.Stats().Decoded)
		}
	}
}
