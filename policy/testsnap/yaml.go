package testsnap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Issue10 is the cluster of issue 10's agent figures: 10,000 pods on 100
// other nodes and 110 on node, 1,000 NetworkPolicies in 50 namespaces
// (each namespace has a default deny, so every local pod is selected).
func Issue10(node string) Config {
	return Config{Seed: 10, Node: node, Nodes: 101, Namespaces: 50, Pods: 10110, LocalPods: 110, Policies: 1000}
}

// WriteYAMLManifests writes the cluster into dir the way people keep
// manifests: multi-document YAML, three files per namespace (the Namespace
// and its NetworkPolicies, then its pods in two halves). For Issue10 that
// is 150 files, about 6 MiB. A file that already holds its content is not
// rewritten (its modification time stays), so a benchmark can change one
// object and write again. It returns the files' names, sorted.
func (c *Cluster) WriteYAMLManifests(dir string) ([]string, error) {
	pods := map[string][]any{}
	for i := range c.Pods {
		p := &c.Pods[i]
		pods[p.Namespace] = append(pods[p.Namespace], p)
	}
	policies := map[string][]any{}
	for i := range c.Policies {
		np := &c.Policies[i]
		policies[np.Namespace] = append(policies[np.Namespace], np)
	}
	var names []string
	for i := range c.Namespaces {
		ns := &c.Namespaces[i]
		half := len(pods[ns.Name]) / 2
		files := []struct {
			name string
			objs []any
		}{
			{fmt.Sprintf("%03d-%s.yaml", i, ns.Name), append([]any{ns}, policies[ns.Name]...)},
			{fmt.Sprintf("%03d-%s-pods-1.yaml", i, ns.Name), pods[ns.Name][:half]},
			{fmt.Sprintf("%03d-%s-pods-2.yaml", i, ns.Name), pods[ns.Name][half:]},
		}
		for _, f := range files {
			data, err := yamlDocuments(f.objs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			path := filepath.Join(dir, f.name)
			if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
				names = append(names, f.name)
				continue
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return nil, err
			}
			names = append(names, f.name)
		}
	}
	return names, nil
}

// yamlDocuments renders objs as one multi-document YAML stream.
func yamlDocuments(objs []any) ([]byte, error) {
	var b bytes.Buffer
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes(), nil
}
