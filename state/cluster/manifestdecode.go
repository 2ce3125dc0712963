package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/policy"
)

// decodeManifestCache decodes what encodeManifestCache made; any
// difference (another format, a wrong checksum, data cut short or left
// over) is an error, and nothing of the cache is used.
func decodeManifestCache(data []byte) (*ManifestCache, error) {
	if len(data) < len(manifestMagic)+sha256.Size || string(data[:len(manifestMagic)]) != manifestMagic {
		return nil, errors.New("not a manifests.cache of this format")
	}
	body := data[:len(data)-sha256.Size]
	if sum := sha256.Sum256(body); string(sum[:]) != string(data[len(body):]) {
		return nil, errors.New("checksum mismatch: the cache is damaged or cut short")
	}
	// One string holds the whole body; every string decoded is a part of it.
	d := &decoder{src: string(body[len(manifestMagic):])}
	c := &ManifestCache{Version: int(d.uint())}
	if c.Version != ManifestCacheVersion {
		return nil, fmt.Errorf("version %d, want %d", c.Version, ManifestCacheVersion)
	}
	c.Node, c.Validator = d.str(), d.str()
	c.Files = make([]ManifestFile, d.count(10))
	for i := range c.Files {
		f := &c.Files[i]
		f.Name, f.Sum = d.str(), d.str()
		f.Size, f.ModTime, f.CTime, f.Inode, f.ReadAt = d.int(), d.int(), d.int(), d.uint(), d.int()
		if n, ok := d.len(4); ok {
			f.Docs = make([]ManifestDoc, n)
			for j := range f.Docs {
				f.Docs[j] = ManifestDoc{Sum: d.str(), Namespaces: d.count(1), Pods: d.count(1), Policies: d.count(1)}
			}
		}
		if n, ok := d.len(2); ok {
			f.Namespaces = make([]policy.Namespace, n)
			for j := range f.Namespaces {
				f.Namespaces[j] = policy.Namespace{Name: d.str(), Labels: d.labels(), Audit: d.bool()}
			}
		}
		if n, ok := d.len(6); ok {
			f.Pods = make([]policy.Pod, n)
			for j := range f.Pods {
				d.pod(&f.Pods[j])
			}
		}
		if n, ok := d.len(8); ok {
			f.Policies = make([]networkingv1.NetworkPolicy, n)
			for j := range f.Policies {
				d.policy(&f.Policies[j])
			}
		}
	}
	if d.err == nil && d.off != len(d.src) {
		d.err = fmt.Errorf("%d bytes after the last file", len(d.src)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

// decoder reads values from src at off; the first error stops it (every
// read after it returns zero values).
type decoder struct {
	src string
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: %s", len(manifestMagic)+d.off, what)
	}
	d.off = len(d.src)
}

func (d *decoder) uint() uint64 {
	v, n := uvarint(d.src[d.off:])
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int() int64 {
	u := d.uint()
	return int64(u>>1) ^ -int64(u&1) // binary.Varint's zig-zag
}

// int32 reads an int that must fit in 32 bits.
func (d *decoder) int32() int32 {
	v := d.int()
	if int64(int32(v)) != v {
		d.fail("number out of range")
	}
	return int32(v)
}

// count reads a count of elements of at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uint()
	if n > uint64((len(d.src)-d.off)/min) {
		d.fail("count beyond the end")
		return 0
	}
	return int(n)
}

// len reads what encoder.len wrote: ok false for nil.
func (d *decoder) len(min int) (int, bool) {
	n := d.uint()
	if n == 0 {
		return 0, false
	}
	if n-1 > uint64((len(d.src)-d.off)/min) {
		d.fail("length beyond the end")
		return 0, false
	}
	return int(n - 1), true
}

func (d *decoder) str() string {
	n := d.uint()
	if n > uint64(len(d.src)-d.off) {
		d.fail("string beyond the end")
		return ""
	}
	s := d.src[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) bool() bool {
	if d.off >= len(d.src) || d.src[d.off] > 1 {
		d.fail("bad bool")
		return false
	}
	d.off++
	return d.src[d.off-1] == 1
}

func (d *decoder) strs() []string {
	n, ok := d.len(1)
	if !ok {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *decoder) labels() map[string]string {
	n, ok := d.len(2)
	if !ok {
		return nil
	}
	out := make(map[string]string, n)
	for range n {
		k := d.str()
		out[k] = d.str()
	}
	if len(out) != n && d.err == nil {
		d.fail("a label twice")
	}
	return out
}

func (d *decoder) pod(p *policy.Pod) {
	p.Namespace, p.Name, p.Node = d.str(), d.str(), d.str()
	p.Labels, p.IPs = d.labels(), d.strs()
	if n, ok := d.len(3); ok {
		p.Ports = make([]policy.NamedPort, n)
		for i := range p.Ports {
			p.Ports[i] = policy.NamedPort{Name: d.str(), Protocol: corev1.Protocol(d.str()), Port: d.int32()}
		}
	}
}

func (d *decoder) policy(np *networkingv1.NetworkPolicy) {
	np.Kind, np.APIVersion = d.str(), d.str()
	np.Namespace, np.Name, np.Labels, np.ResourceVersion = d.str(), d.str(), d.labels(), d.str()
	s := &np.Spec
	d.selector(&s.PodSelector)
	if n, ok := d.len(2); ok {
		s.Ingress = make([]networkingv1.NetworkPolicyIngressRule, n)
		for i := range s.Ingress {
			s.Ingress[i] = networkingv1.NetworkPolicyIngressRule{Ports: d.ports(), From: d.peers()}
		}
	}
	if n, ok := d.len(2); ok {
		s.Egress = make([]networkingv1.NetworkPolicyEgressRule, n)
		for i := range s.Egress {
			s.Egress[i] = networkingv1.NetworkPolicyEgressRule{Ports: d.ports(), To: d.peers()}
		}
	}
	if n, ok := d.len(1); ok {
		s.PolicyTypes = make([]networkingv1.PolicyType, n)
		for i := range s.PolicyTypes {
			s.PolicyTypes[i] = networkingv1.PolicyType(d.str())
		}
	}
}

func (d *decoder) selector(s *metav1.LabelSelector) {
	s.MatchLabels = d.labels()
	if n, ok := d.len(3); ok {
		s.MatchExpressions = make([]metav1.LabelSelectorRequirement, n)
		for i := range s.MatchExpressions {
			r := &s.MatchExpressions[i]
			r.Key, r.Operator, r.Values = d.str(), metav1.LabelSelectorOperator(d.str()), d.strs()
		}
	}
}

func (d *decoder) optSelector() *metav1.LabelSelector {
	if !d.bool() {
		return nil
	}
	s := &metav1.LabelSelector{}
	d.selector(s)
	return s
}

func (d *decoder) ports() []networkingv1.NetworkPolicyPort {
	n, ok := d.len(3)
	if !ok {
		return nil
	}
	out := make([]networkingv1.NetworkPolicyPort, n)
	for i := range out {
		p := &out[i]
		if d.bool() {
			proto := corev1.Protocol(d.str())
			p.Protocol = &proto
		}
		if d.bool() {
			p.Port = &intstr.IntOrString{Type: intstr.Type(d.int()), IntVal: d.int32(), StrVal: d.str()}
		}
		if d.bool() {
			end := d.int32()
			p.EndPort = &end
		}
	}
	return out
}

func (d *decoder) peers() []networkingv1.NetworkPolicyPeer {
	n, ok := d.len(3)
	if !ok {
		return nil
	}
	out := make([]networkingv1.NetworkPolicyPeer, n)
	for i := range out {
		p := &out[i]
		p.PodSelector, p.NamespaceSelector = d.optSelector(), d.optSelector()
		if d.bool() {
			p.IPBlock = &networkingv1.IPBlock{CIDR: d.str(), Except: d.strs()}
		}
	}
	return out
}

// uvarint is binary.Uvarint of a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
