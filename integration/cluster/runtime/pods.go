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
	file := r.podConfigFile(spec.Namespace, spec.Name)
	if err := writeJSON(file, cfg); err != nil {
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

// podConfigFile is where RunPod keeps a pod's sandbox config (crictl
// create needs it again).
func (r *Runtime) podConfigFile(namespace, name string) string {
	return r.path("pods", namespace+"_"+name+".json")
}

func writeJSON(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// ContainerSpec is what a test sets of a CRI ContainerConfig.
type ContainerSpec struct {
	Name    string
	Image   string   // an imported image, e.g. image.AgnhostRef
	Command []string // replaces the image's entrypoint when set
	Args    []string // replaces the image's command when set
	Env     []string // KEY=VALUE
	// Capabilities are added to the runtime's default set (e.g.
	// NET_ADMIN, as the DaemonSet's agent has).
	Capabilities []string
}

// RunContainer creates and starts a container in a pod that RunPod made
// (crictl create, crictl start) and returns its id. Its output goes to
// Dir/pods/<namespace>_<name>/<container>.log (crictl logs reads it).
func (r *Runtime) RunContainer(ctx context.Context, p *Pod, spec ContainerSpec) (string, error) {
	var env []map[string]string
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, map[string]string{"key": k, "value": v})
	}
	cfg := map[string]any{
		"metadata": map[string]any{"name": spec.Name},
		"image":    map[string]any{"image": spec.Image},
		"command":  spec.Command, "args": spec.Args, "envs": env,
		"log_path": spec.Name + ".log",
		"linux": map[string]any{"security_context": map[string]any{
			"capabilities": map[string]any{"add_capabilities": spec.Capabilities},
		}},
	}
	file := r.path("pods", p.Namespace+"_"+p.Name+"."+spec.Name+".json")
	if err := writeJSON(file, cfg); err != nil {
		return "", err
	}
	out, err := r.Crictl(ctx, "create", p.ID, file, r.podConfigFile(p.Namespace, p.Name))
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(out))
	if _, err := r.Crictl(ctx, "start", id); err != nil {
		return id, err
	}
	return id, nil
}

// ContainerState returns a container's state (CONTAINER_RUNNING,
// CONTAINER_EXITED, ...) and exit code (crictl inspect).
func (r *Runtime) ContainerState(ctx context.Context, id string) (string, int, error) {
	out, err := r.Crictl(ctx, "inspect", "--output", "json", id)
	if err != nil {
		return "", 0, err
	}
	var v struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", 0, fmt.Errorf("crictl inspect %s: %w", id, err)
	}
	return v.Status.State, v.Status.ExitCode, nil
}
