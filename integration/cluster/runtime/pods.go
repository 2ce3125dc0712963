package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PodSpec is what a test sets of a CRI PodSandboxConfig.
type PodSpec struct {
	Name      string
	Namespace string
	UID       string // default "uid-<namespace>-<name>"
	Labels    map[string]string
}

// Pod is a running pod sandbox as the CRI reports it.
type Pod struct {
	ID        string
	Name      string
	Namespace string
	UID       string
	State     string // SANDBOX_READY or SANDBOX_NOTREADY
	IP        string // primary IP from the CNI result
	PID       int    // the sandbox (pause) process; 0 once stopped
	// NetNS is the pod's network namespace, usable from the test process
	// (/proc/<pause pid>/ns/net) while the sandbox runs; "" once stopped.
	NetNS string
	// NetNSFile is the runtime's own pin of the namespace, inside its
	// mount namespace (e.g. /var/run/netns/cni-…).
	NetNSFile string
}

// RunPod creates and starts a pod sandbox through the CRI (crictl runp):
// containerd sets up its network namespace through the CNI chain.
func (r *Runtime) RunPod(ctx context.Context, spec PodSpec) (*Pod, error) {
	if spec.UID == "" {
		spec.UID = "uid-" + spec.Namespace + "-" + spec.Name
	}
	cfg := map[string]any{
		"metadata":      map[string]any{"name": spec.Name, "namespace": spec.Namespace, "uid": spec.UID},
		"labels":        spec.Labels,
		"log_directory": r.path("pods", spec.Namespace+"_"+spec.Name),
		"linux": map[string]any{
			"cgroup_parent": r.CgroupParent,
			"security_context": map[string]any{
				"namespace_options": map[string]any{"network": 0}, // POD
			},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	file := r.path("pods", spec.Namespace+"_"+spec.Name+".json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return nil, err
	}
	out, err := r.Crictl(ctx, "runp", file)
	if err != nil {
		return nil, err
	}
	return r.InspectPod(ctx, strings.TrimSpace(string(out)))
}

// InspectPod returns a pod sandbox's state (crictl inspectp).
func (r *Runtime) InspectPod(ctx context.Context, id string) (*Pod, error) {
	out, err := r.Crictl(ctx, "inspectp", "--output", "json", id)
	if err != nil {
		return nil, err
	}
	var v struct {
		Status struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Metadata struct {
				Name, Namespace, UID string
			} `json:"metadata"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			PID         int `json:"pid"`
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string } `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("crictl inspectp %s: %w", id, err)
	}
	p := &Pod{
		ID: v.Status.ID, Name: v.Status.Metadata.Name, Namespace: v.Status.Metadata.Namespace,
		UID: v.Status.Metadata.UID, State: v.Status.State, IP: v.Status.Network.IP, PID: v.Info.PID,
	}
	for _, ns := range v.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			p.NetNSFile = ns.Path
		}
	}
	if p.PID > 0 && p.State == "SANDBOX_READY" {
		p.NetNS = fmt.Sprintf("/proc/%d/ns/net", p.PID)
	}
	return p, nil
}

// StopPod stops a pod sandbox (crictl stopp): containerd tears its
// network down through the CNI chain (DEL).
func (r *Runtime) StopPod(ctx context.Context, id string) error {
	_, err := r.Crictl(ctx, "stopp", id)
	return err
}

// RemovePod removes a pod sandbox (crictl rmp).
func (r *Runtime) RemovePod(ctx context.Context, id string) error {
	_, err := r.Crictl(ctx, "rmp", id)
	return err
}

// PodIDs lists the ids of all pod sandboxes the runtime knows.
func (r *Runtime) PodIDs(ctx context.Context) ([]string, error) {
	out, err := r.Crictl(ctx, "pods", "--quiet")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}
