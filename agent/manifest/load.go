// Package manifest builds a policy.Snapshot from a directory of Kubernetes
// manifests (Namespace, Pod, NetworkPolicy and v1 List of those), so netpol
// can be tried with no cluster at all. Decoding is strict: an unknown kind or
// field is an error naming the file and the document.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/netpol/netpol/policy"
)

// extensions are the file name endings Load reads.
var extensions = []string{".yaml", ".yml", ".json"}

// Load reads every *.yaml, *.yml and *.json file directly in dir (sorted by
// name, not recursive, dotfiles skipped), converts the objects to a snapshot
// for node and validates it with policy.ValidateSnapshot. A pod without
// spec.nodeName is taken as node's. The files are decoded in parallel; an
// error names the first failing file in name order. Cache.Load loads a
// directory again decoding only what changed.
func Load(dir string, node string) (*policy.Snapshot, error) { return NewCache(node).Load(dir) }

// manifestFile is a file Load reads.
type manifestFile struct {
	path string
	info os.FileInfo
}

// manifestFiles lists the files Load reads, in name order. Symbolic links are
// followed (a ConfigMap volume is made of them); directories are skipped.
func manifestFiles(dir string) ([]manifestFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	var files []manifestFile
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !hasManifestExtension(name) {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("manifests: %w", err)
		}
		if info.Mode().IsRegular() {
			files = append(files, manifestFile{path: path, info: info})
		}
	}
	return files, nil
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// hasManifestExtension reports whether name ends in one of extensions.
func hasManifestExtension(name string) bool {
	for _, ext := range extensions {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// rawDocuments returns each document of a file as it is written: a .json
// file is a stream of JSON values; anything else is multi-document YAML,
// split as utilyaml.YAMLReader splits it (splitYAML).
func rawDocuments(data []byte, isJSON bool) ([][]byte, error) {
	if isJSON {
		return splitJSON(data)
	}
	if docs, ok := splitYAML(data); ok {
		return docs, nil
	}
	return readYAMLDocuments(data)
}

// splitYAML returns the documents of data as readYAMLDocuments does, each
// a slice of data instead of a copy, when data is empty or ends in a line
// feed and holds no carriage return, and every line that begins with
// "---" is a separator (nothing but white space or a comment after it).
// Then each line YAMLReader reads is the line as written, and a document is
// its lines from the first to the one before the next separator, or to
// the end (a separator at the start of a document is part of it). It
// reports false for any other data, left to YAMLReader: a line end it
// rewrites (CR LF to LF, an unterminated last line given one), a last line
// it may drop (one as long as a multiple of its 4 KiB buffer, unterminated),
// the error of a bad separator.
func splitYAML(data []byte) ([][]byte, bool) {
	if len(data) > 0 && data[len(data)-1] != '\n' || bytes.IndexByte(data, '\r') >= 0 {
		return nil, false
	}
	var docs [][]byte
	start, empty := 0, true // the document so far is data[start:pos] unless empty
	for pos := 0; pos < len(data); {
		end := pos + bytes.IndexByte(data[pos:], '\n') + 1
		if line := data[pos:end]; bytes.HasPrefix(line, []byte(yamlSeparator)) {
			if rest := bytes.TrimSpace(line[len(yamlSeparator):]); len(rest) > 0 && rest[0] != '#' {
				return nil, false
			}
			if !empty {
				docs = append(docs, data[start:pos:pos])
				start, empty, pos = end, true, end
				continue
			}
		}
		if empty {
			start, empty = pos, false
		}
		pos = end
	}
	if !empty {
		docs = append(docs, data[start:len(data):len(data)])
	}
	return docs, true
}

// yamlSeparator begins the line between two YAML documents.
const yamlSeparator = "---"

// readYAMLDocuments returns the documents utilyaml.YAMLReader reads from
// data.
func readYAMLDocuments(data []byte) ([][]byte, error) {
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, doc)
	}
}

// documentJSON returns one document of rawDocuments as JSON, YAML
// converted with duplicate keys rejected; nil for an empty document (only
// comments, or null).
func documentJSON(doc []byte, isJSON bool) ([]byte, error) {
	if isJSON {
		return nonNull(doc), nil
	}
	j, err := yamlToJSON(doc)
	if err != nil {
		return nil, err
	}
	return nonNull(j), nil
}

// splitJSON splits a stream of JSON values.
func splitJSON(data []byte) ([][]byte, error) {
	var docs [][]byte
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, raw)
	}
}

// nonNull returns nil for an empty or null document, else doc.
func nonNull(doc []byte) []byte {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil
	}
	return doc
}

// decodeStrict decodes one JSON object into v, rejecting unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the object")
	}
	return nil
}
