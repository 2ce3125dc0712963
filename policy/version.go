package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	networkingv1 "k8s.io/api/networking/v1"
)

// Version is the version of a NetworkPolicy that netpol reports in force:
// its resourceVersion when it came from the API, else (a manifest) "sha256:"
// and the start of the hash of the object as the snapshot holds it, so an
// edit of its spec, name or labels is a new version.
func Version(np *networkingv1.NetworkPolicy) string {
	if np.ResourceVersion != "" {
		return np.ResourceVersion
	}
	data, err := json.Marshal(np)
	if err != nil {
		return "unknown" // a NetworkPolicy always encodes
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:8])
}
