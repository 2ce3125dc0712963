package conf

import (
	"fmt"

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
// K8S_POD_NAME=..;..."). The namespace and name are required; unknown keys
// are an error unless IgnoreUnknown is set, as in every CNI plugin.
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
	return PodArgs{
		Namespace: string(args.K8S_POD_NAMESPACE),
		Name:      string(args.K8S_POD_NAME),
	}, nil
}
