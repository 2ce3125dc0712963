package conf

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// PodArgs is the pod identity a Kubernetes runtime passes in CNI_ARGS.
type PodArgs struct {
	Namespace string
	Name      string
}

// k8sArgs is the CNI_ARGS layout types.LoadArgs fills in; the field names are
// the keys. The infra container ID and the pod UID are accepted (runtimes
// send them without IgnoreUnknown) but not used.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString
	K8S_POD_NAME               types.UnmarshallableString
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString
	K8S_POD_UID                types.UnmarshallableString
}

// ParsePodArgs parses CNI_ARGS ("IgnoreUnknown=1;K8S_POD_NAMESPACE=..;
// K8S_POD_NAME=..;..."). The namespace and name are required and must be
// what the API server accepts (a DNS-1123 label and a DNS-1123 subdomain);
// unknown keys are an error unless IgnoreUnknown is set, as in every CNI
// plugin.
func ParsePodArgs(cniArgs string) (PodArgs, error) {
	var args k8sArgs
	if err := types.LoadArgs(cniArgs, &args); err != nil {
		return PodArgs{}, fmt.Errorf("netpol CNI_ARGS %q: %w", cniArgs, err)
	}
	if args.K8S_POD_NAMESPACE == "" {
		return PodArgs{}, fmt.Errorf("netpol CNI_ARGS %q: key K8S_POD_NAMESPACE is missing or empty", cniArgs)
	}
	if args.K8S_POD_NAME == "" {
		return PodArgs{}, fmt.Errorf("netpol CNI_ARGS %q: key K8S_POD_NAME is missing or empty", cniArgs)
	}
	if errs := isDNS1123Label(string(args.K8S_POD_NAMESPACE)); len(errs) > 0 {
		return PodArgs{}, invalidKey("K8S_POD_NAMESPACE", string(args.K8S_POD_NAMESPACE), "namespace", errs)
	}
	if errs := isDNS1123Subdomain(string(args.K8S_POD_NAME)); len(errs) > 0 {
		return PodArgs{}, invalidKey("K8S_POD_NAME", string(args.K8S_POD_NAME), "pod name", errs)
	}
	return PodArgs{
		Namespace: string(args.K8S_POD_NAMESPACE),
		Name:      string(args.K8S_POD_NAME),
	}, nil
}

// invalidKey is the error for a CNI_ARGS value the API server would reject.
func invalidKey(key, value, what string, errs []string) error {
	return fmt.Errorf("netpol CNI_ARGS: key %s: %q is not a valid %s: %s", key, value, what, strings.Join(errs, "; "))
}
