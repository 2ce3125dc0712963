package manifest

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

// docObjects is what one document of a manifest file converted to.
type docObjects struct {
	namespaces []policy.Namespace
	pods       []policy.Pod
	policies   []networkingv1.NetworkPolicy
	valid      bool     // every object passed validation (objectsValid)
	sum        [32]byte // the SHA-256 of the document's bytes
}

// docSums maps the SHA-256 of a document's bytes to its objects.
type docSums map[[32]byte]*docObjects

// addData decodes every document of one file, its content data, and adds
// its objects, in document order. A document whose bytes old holds (the
// documents of the file's last version) is not decoded (nor validated)
// again: a change to one pod of a file of hundreds decodes that pod alone.
// It returns the objects of each document by hash, and in document order.
// Errors are those of decoding every document: the first document that
// does not parse, or else the first object that does not convert.
func (b *Builder) addData(path string, data []byte, old docSums) (docSums, []*docObjects, error) {
	isJSON := filepath.Ext(path) == ".json"
	raws, err := rawDocuments(data, isJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	sums := make([][32]byte, len(raws))
	jsons := make([][]byte, len(raws))
	docs := make(docSums, len(raws))
	for i, raw := range raws {
		sums[i] = sha256.Sum256(raw)
		if d := old[sums[i]]; d != nil {
			docs[sums[i]] = d
			continue
		}
		if jsons[i], err = documentJSON(raw, isJSON); err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
	}
	units := make([]*docObjects, len(sums))
	for i, sum := range sums {
		d := docs[sum]
		if d == nil {
			nb := &Builder{node: b.node, bySniffedKind: b.bySniffedKind}
			if jsons[i] != nil {
				if err := nb.addObject(jsons[i], fmt.Sprintf("%s: document %d", path, i+1)); err != nil {
					return nil, nil, err
				}
			}
			d = &docObjects{namespaces: nb.namespaces, pods: nb.pods, policies: nb.policies, sum: sum}
			d.valid = objectsValid(&cluster.ManifestFile{Namespaces: d.namespaces, Pods: d.pods, Policies: d.policies})
			docs[sum] = d
		}
		units[i] = d
		b.namespaces = append(b.namespaces, d.namespaces...)
		b.pods = append(b.pods, d.pods...)
		b.policies = append(b.policies, d.policies...)
	}
	return docs, units, nil
}

// storedDocs returns the documents of units for cluster.ManifestFile.Docs.
func storedDocs(units []*docObjects) []cluster.ManifestDoc {
	out := make([]cluster.ManifestDoc, len(units))
	for i, u := range units {
		out[i] = cluster.ManifestDoc{Sum: string(u.sum[:]), Namespaces: len(u.namespaces), Pods: len(u.pods),
			Policies: len(u.policies)}
	}
	return out
}

// seededDocs returns the documents of a stored file, each given its part
// of the file's objects, and them by hash; nil when f has none or they do
// not add up to its objects.
func seededDocs(f *cluster.ManifestFile, valid bool) ([]*docObjects, docSums) {
	if f.Docs == nil {
		return nil, nil
	}
	units := make([]*docObjects, len(f.Docs))
	docs := make(docSums, len(f.Docs))
	var ns, pods, pols int
	for i, doc := range f.Docs {
		if len(doc.Sum) != 32 || ns+doc.Namespaces > len(f.Namespaces) || pods+doc.Pods > len(f.Pods) ||
			pols+doc.Policies > len(f.Policies) {
			return nil, nil
		}
		u := &docObjects{valid: valid,
			namespaces: nilIfNone(f.Namespaces[ns : ns+doc.Namespaces : ns+doc.Namespaces]),
			pods:       nilIfNone(f.Pods[pods : pods+doc.Pods : pods+doc.Pods]),
			policies:   nilIfNone(f.Policies[pols : pols+doc.Policies : pols+doc.Policies])}
		copy(u.sum[:], doc.Sum)
		ns, pods, pols = ns+doc.Namespaces, pods+doc.Pods, pols+doc.Policies
		if d := docs[u.sum]; d != nil {
			u = d // the same bytes twice: one unit, as addData makes it
		}
		units[i], docs[u.sum] = u, u
	}
	if ns != len(f.Namespaces) || pods != len(f.Pods) || pols != len(f.Policies) {
		return nil, nil
	}
	return units, docs
}

// nilIfNone returns nil for an empty slice, as a Builder leaves a
// document's kinds it has no objects of.
func nilIfNone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// unitsValid reports whether every document of units is valid.
func unitsValid(units []*docObjects) bool {
	for _, u := range units {
		if !u.valid {
			return false
		}
	}
	return true
}

// objectsValid reports whether every namespace, pod and policy of f passes
// policy.ValidateNamespace, ValidatePod and ValidatePolicy.
func objectsValid(f *cluster.ManifestFile) bool {
	for i := range f.Namespaces {
		if len(policy.ValidateNamespace(&f.Namespaces[i])) > 0 {
			return false
		}
	}
	for i := range f.Pods {
		if len(policy.ValidatePod(&f.Pods[i])) > 0 {
			return false
		}
	}
	for i := range f.Policies {
		if len(policy.ValidatePolicy(&f.Policies[i])) > 0 {
			return false
		}
	}
	return true
}

// validate returns policy.ValidateSnapshot(s) for s made of files, without
// validating again the pods and policies of files decoded and validated
// earlier: the files not known valid (seeded from a stored cache) have
// their pods and policies validated, one worker per CPU; when every file
// is then valid, only the namespaces and the uniqueness of names are
// checked; otherwise, or when one of those fails, the whole snapshot is
// validated, for the error ValidateSnapshot names.
func validate(s *policy.Snapshot, files map[string]*cached) error {
	validateFiles(files)
	all := true
	for _, f := range files {
		all = all && f.valid
	}
	if all && namespacesAndNamesValid(s) {
		return nil
	}
	if err := policy.ValidateSnapshot(s); err != nil {
		return err
	}
	return nil
}

// validateFiles sets valid on each file of files whose objects all pass
// validation (objectsValid), and on its documents, checking the files not
// known valid on a pool of workers, one per CPU the process may use.
func validateFiles(files map[string]*cached) {
	work := make(chan *cached)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if f.valid = objectsValid(&f.file); f.valid {
					for _, u := range f.units {
						u.valid = true
					}
				}
			}
		}()
	}
	for _, f := range files {
		if !f.valid {
			work <- f
		}
	}
	close(work)
	wg.Wait()
}

// namespacesAndNamesValid reports whether the namespaces of s are valid
// and no namespace, pod or policy is there twice: what ValidateSnapshot
// checks beyond each pod and policy alone.
func namespacesAndNamesValid(s *policy.Snapshot) bool {
	seen := make(map[string]bool, len(s.Namespaces)+len(s.Pods)+len(s.Policies))
	once := func(key string) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		return true
	}
	for i := range s.Namespaces {
		if len(policy.ValidateNamespace(&s.Namespaces[i])) > 0 || !once("namespace\x00"+s.Namespaces[i].Name) {
			return false
		}
	}
	for i := range s.Pods {
		if !once("pod\x00" + s.Pods[i].Namespace + "\x00" + s.Pods[i].Name) {
			return false
		}
	}
	for i := range s.Policies {
		if !once("policy\x00" + s.Policies[i].Namespace + "\x00" + s.Policies[i].Name) {
			return false
		}
	}
	return true
}
