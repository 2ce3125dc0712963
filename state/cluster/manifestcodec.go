package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/policy"
)

// manifestMagic starts a manifests.cache; a file that does not start so
// (the JSON of version 1, say) is not a cache of this format.
const manifestMagic = "netpol manifests.cache\n"

// encodeManifestCache encodes c: manifestMagic, the version, the node,
// the validator, the files, and then the SHA-256 of all that, so that a
// cache cut short or damaged is refused whole. Integers are varints;
// strings, slices and maps their length and elements, a slice or map
// written as its length + 1, 0 for nil, so that nil and empty survive;
// a pointer a 0 or 1 and what it points to; a map's keys sorted. A policy
// whose metadata holds more than namespace, name, labels and
// resourceVersion (what manifest.ConvertPolicy keeps) is an error: the
// format has no place for the rest.
func encodeManifestCache(c *ManifestCache) ([]byte, error) {
	e := &encoder{buf: make([]byte, 0, 1<<20)}
	e.buf = append(e.buf, manifestMagic...)
	e.uint(uint64(c.Version))
	e.str(c.Node)
	e.str(c.Validator)
	e.uint(uint64(len(c.Files)))
	for i := range c.Files {
		f := &c.Files[i]
		e.str(f.Name)
		e.str(f.Sum)
		e.int(f.Size)
		e.int(f.ModTime)
		e.int(f.CTime)
		e.uint(f.Inode)
		e.int(f.ReadAt)
		e.len(len(f.Docs), f.Docs == nil)
		for _, doc := range f.Docs {
			e.str(doc.Sum)
			e.uint(uint64(doc.Namespaces))
			e.uint(uint64(doc.Pods))
			e.uint(uint64(doc.Policies))
		}
		e.len(len(f.Namespaces), f.Namespaces == nil)
		for j := range f.Namespaces {
			ns := &f.Namespaces[j]
			e.str(ns.Name)
			e.labels(ns.Labels)
			e.bool(ns.Audit)
		}
		e.len(len(f.Pods), f.Pods == nil)
		for j := range f.Pods {
			e.pod(&f.Pods[j])
		}
		e.len(len(f.Policies), f.Policies == nil)
		for j := range f.Policies {
			if err := e.policy(&f.Policies[j]); err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
		}
	}
	sum := sha256.Sum256(e.buf)
	return append(e.buf, sum[:]...), nil
}

// encoder appends the encoding of values to buf.
type encoder struct{ buf []byte }

func (e *encoder) uint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) int(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) str(s string)  { e.uint(uint64(len(s))); e.buf = append(e.buf, s...) }

func (e *encoder) bool(b bool) {
	if b {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// len writes the length of a slice or map: 0 for nil, else n + 1.
func (e *encoder) len(n int, isNil bool) {
	if isNil {
		e.uint(0)
	} else {
		e.uint(uint64(n) + 1)
	}
}

func (e *encoder) strs(s []string) {
	e.len(len(s), s == nil)
	for _, v := range s {
		e.str(v)
	}
}

func (e *encoder) labels(m map[string]string) {
	e.len(len(m), m == nil)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) pod(p *policy.Pod) {
	e.str(p.Namespace)
	e.str(p.Name)
	e.str(p.Node)
	e.labels(p.Labels)
	e.strs(p.IPs)
	e.len(len(p.Ports), p.Ports == nil)
	for _, port := range p.Ports {
		e.str(port.Name)
		e.str(string(port.Protocol))
		e.int(int64(port.Port))
	}
}

func (e *encoder) policy(np *networkingv1.NetworkPolicy) error {
	kept := metav1.ObjectMeta{Namespace: np.Namespace, Name: np.Name, Labels: np.Labels, ResourceVersion: np.ResourceVersion}
	if !reflect.DeepEqual(kept, np.ObjectMeta) {
		return fmt.Errorf("policy %s/%s: metadata beyond namespace, name, labels and resourceVersion", np.Namespace, np.Name)
	}
	e.str(np.Kind)
	e.str(np.APIVersion)
	e.str(np.Namespace)
	e.str(np.Name)
	e.labels(np.Labels)
	e.str(np.ResourceVersion)
	s := &np.Spec
	e.selector(&s.PodSelector)
	e.len(len(s.Ingress), s.Ingress == nil)
	for i := range s.Ingress {
		e.ports(s.Ingress[i].Ports)
		e.peers(s.Ingress[i].From)
	}
	e.len(len(s.Egress), s.Egress == nil)
	for i := range s.Egress {
		e.ports(s.Egress[i].Ports)
		e.peers(s.Egress[i].To)
	}
	e.len(len(s.PolicyTypes), s.PolicyTypes == nil)
	for _, t := range s.PolicyTypes {
		e.str(string(t))
	}
	return nil
}

func (e *encoder) selector(s *metav1.LabelSelector) {
	e.labels(s.MatchLabels)
	e.len(len(s.MatchExpressions), s.MatchExpressions == nil)
	for _, r := range s.MatchExpressions {
		e.str(r.Key)
		e.str(string(r.Operator))
		e.strs(r.Values)
	}
}

func (e *encoder) optSelector(s *metav1.LabelSelector) {
	e.bool(s != nil)
	if s != nil {
		e.selector(s)
	}
}

func (e *encoder) ports(ports []networkingv1.NetworkPolicyPort) {
	e.len(len(ports), ports == nil)
	for _, p := range ports {
		e.bool(p.Protocol != nil)
		if p.Protocol != nil {
			e.str(string(*p.Protocol))
		}
		e.bool(p.Port != nil)
		if p.Port != nil {
			e.int(int64(p.Port.Type))
			e.int(int64(p.Port.IntVal))
			e.str(p.Port.StrVal)
		}
		e.bool(p.EndPort != nil)
		if p.EndPort != nil {
			e.int(int64(*p.EndPort))
		}
	}
}

func (e *encoder) peers(peers []networkingv1.NetworkPolicyPeer) {
	e.len(len(peers), peers == nil)
	for _, p := range peers {
		e.optSelector(p.PodSelector)
		e.optSelector(p.NamespaceSelector)
		e.bool(p.IPBlock != nil)
		if p.IPBlock != nil {
			e.str(p.IPBlock.CIDR)
			e.strs(p.IPBlock.Except)
		}
	}
}
