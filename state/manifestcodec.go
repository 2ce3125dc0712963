package state

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
		f.Size, f.ModTime, f.Inode, f.ReadAt = d.int(), d.int(), d.uint(), d.int()
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
