package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
)

// decodeBoth decodes data as the file path with a Builder that guesses
// kinds and with one that decodes by the sniffed kind only, and reports
// how they differ: in the error, or in the objects and their documents.
func decodeBoth(path string, data []byte) string {
	type result struct {
		Err        string
		Namespaces []policy.Namespace
		Pods       []policy.Pod
		Policies   []networkingv1.NetworkPolicy
		Units      []string // each document's object counts and validity
	}
	var out [2]result
	for i, sniffed := range []bool{false, true} {
		b := &Builder{node: "node-a", bySniffedKind: sniffed}
		_, units, err := b.addData(path, data, nil)
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		out[i].Namespaces, out[i].Pods, out[i].Policies = b.namespaces, b.pods, b.policies
		for _, u := range units {
			out[i].Units = append(out[i].Units, fmt.Sprint(len(u.namespaces), len(u.pods), len(u.policies), u.valid))
		}
	}
	return cmp.Diff(out[1], out[0])
}

// oddDocuments are documents near the guessed kinds: another apiVersion, a
// kind in other case or twice, a field unknown or in other case, a List of
// guessed kinds, a value of the wrong type.
var oddDocuments = []string{
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: n, containers: [{name: c, ports: [{name: p, containerPort: 80}]}]}\n",
	"apiVersion: v1\nkind: Pod\nKind: Namespace\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Pod\nKIND: Pod\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Pod\nApiVersion: v2\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nSpec: {nodeName: n}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nbogus: 1\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a, bogus: 1}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: 5}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}\n",
	"apiVersion: v2\nkind: Pod\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Pods\nmetadata: {name: a}\n",
	"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, resourceVersion: '7'}\nspec: {podSelector: {}}\n",
	"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}, bogus: 1}\n",
	"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nKind: Pod\nmetadata: {name: p}\nspec: {podSelector: {}}\n",
	"apiVersion: v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}\n",
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {a: b}}\n",
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nstatus: {phase: Active}\n",
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nbogus: true\n",
	"apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, metadata: {name: a}}, {apiVersion: v1, kind: Namespace, metadata: {name: b}}]\n",
	"apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, metadata: {name: a}, bogus: 1}]\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {on: yes}}\n",
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {x: 1.0}}\n",
}

// oddJSON are JSON files that begin as a guessed kind's YAML does and then
// name another kind or apiVersion, in the same or in other case.
var oddJSON = []string{
	`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}} `,
	`{"apiVersion":"v1","kind":"Pod","kind":"Namespace","metadata":{"name":"a"}}`,
	`{"apiVersion":"v1","kind":"Pod","apiVersion":"v2","metadata":{"name":"a"}}`,
	`{"apiVersion":"v1","kind":"Pod","APIVERSION":"networking.k8s.io/v1","metadata":{"name":"a"}}`,
	`{"apiVersion":"v1","kind":"Pod","Kind":"Pod","metadata":{"name":"a"}}{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}`,
	`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","kind":"Pod","metadata":{"name":"p"},"spec":{"podSelector":{}}}`,
	`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","apiVersion":"v1","metadata":{"name":"p"},"spec":{"podSelector":{}}}`,
	`{"apiVersion":"v1","kind":"Namespace","apiVersion":"v2","metadata":{"name":"x"}}`,
	`{"apiVersion":"v1","kind":"Namespace","kind":"Pod","metadata":{"name":"x"}}`,
	`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":null,"status":{"podIPs":[{"ip":"10.0.0.1"}]}}`,
	`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"\u212aind":"Namespace"}`,
}

// TestGuessedKindIsSniffedKind: decoding by the guessed kind gives what
// decoding by the sniffed kind gives (the same objects, or the same error)
// for every file of testdata, five namespaces of issue 10's world (each
// of whose documents is decoded by its guessed kind), oddDocuments and
// oddJSON.
func TestGuessedKindIsSniffedKind(t *testing.T) {
	// five namespaces of the world: a namespace, its policies, its pods in
	// two files
	files, world := testdataAndWorld(t, "*", 15)
	guessed, worldDocs := 0, 0
	for _, file := range files {
		if !hasManifestExtension(file) {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if diff := decodeBoth(file, data); diff != "" {
			t.Errorf("%s: guessed kinds (+) differ from sniffed kinds (-):\n%s", file, diff)
		}
		if filepath.Dir(file) == world {
			n, all := countGuessed(file, data)
			guessed, worldDocs = guessed+n, worldDocs+all
		}
	}
	for i, doc := range oddDocuments {
		if diff := decodeBoth(fmt.Sprintf("odd-%d.yaml", i), []byte(doc)); diff != "" {
			t.Errorf("odd document %d:\n%s\nguessed kinds (+) differ from sniffed kinds (-):\n%s", i, doc, diff)
		}
	}
	for i, doc := range oddJSON {
		if diff := decodeBoth(fmt.Sprintf("odd-%d.json", i), []byte(doc)); diff != "" {
			t.Errorf("odd JSON %d:\n%s\nguessed kinds (+) differ from sniffed kinds (-):\n%s", i, doc, diff)
		}
	}
	if guessed != worldDocs || worldDocs < 1000 {
		t.Errorf("%d of the %d documents of issue 10's world decoded by their guessed kind, want all", guessed, worldDocs)
	}
}

// countGuessed returns how many documents of a YAML file addGuessed adds,
// and how many documents the file has.
func countGuessed(path string, data []byte) (guessed, docs int) {
	raws, err := rawDocuments(data, false)
	if err != nil {
		return 0, 0
	}
	for _, raw := range raws {
		j, err := documentJSON(raw, false)
		if err == nil && j != nil && NewBuilder("node-a").addGuessed(j) {
			guessed++
		}
	}
	return guessed, len(raws)
}

// FuzzGuessedKind: for any file, decoding by the guessed kind gives what
// decoding by the sniffed kind gives.
func FuzzGuessedKind(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data, filepath.Ext(file) == ".json")
		}
	}
	for _, doc := range oddDocuments {
		f.Add([]byte(doc), false)
	}
	for _, doc := range oddJSON {
		f.Add([]byte(doc), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		path := "m.yaml"
		if isJSON {
			path = "m.json"
		}
		if diff := decodeBoth(path, data); diff != "" {
			t.Errorf("guessed kinds (+) differ from sniffed kinds (-):\n%s", diff)
		}
	})
}

// BenchmarkGuessedKind decodes a pods file and a policies file of issue
// 10's world (addData, one goroutine), by guessed kinds and by sniffed
// kinds in turn, and reports the CPU time of each per document and their
// ratio (guessed/sniffed): the sniff's pass over each document is what the
// guess saves.
func BenchmarkGuessedKind(b *testing.B) {
	names, data := issue10Files(b)
	names, data = names[:3], data[:3] // a namespace, its policies, its pods
	var spent [2]time.Duration
	docs := 0
	for b.Loop() {
		for i, sniffed := range []bool{false, true} {
			start := time.Now()
			for j, d := range data {
				nb := &Builder{node: "node-a", bySniffedKind: sniffed}
				units, err := nb.addDataUnits(names[j], d)
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					docs += units
				}
			}
			spent[i] += time.Since(start)
		}
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(docs), "guessed-ns/doc")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(docs), "sniffed-ns/doc")
	b.ReportMetric(float64(spent[0])/float64(spent[1]), "guessed/sniffed")
}

// addDataUnits is addData with no earlier documents, returning the number
// of documents.
func (b *Builder) addDataUnits(path string, data []byte) (int, error) {
	_, units, err := b.addData(path, data, nil)
	return len(units), err
}
