package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// everyFieldPolicy sets every field the codec knows, with nil and empty
// slices and maps side by side.
func everyFieldPolicy() networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port, named, end := intstr.FromInt32(80), intstr.FromString("http"), int32(90)
	return networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "all", Labels: map[string]string{"a": "1", "b": ""},
			ResourceVersion: "42"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{}, MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "k", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}},
				{Key: "e", Operator: metav1.LabelSelectorOpExists, Values: []string{}},
				{Key: "n", Operator: metav1.LabelSelectorOpDoesNotExist},
			}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{},
				{Ports: []networkingv1.NetworkPolicyPort{}, From: []networkingv1.NetworkPolicyPeer{}},
				{
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port, EndPort: &end}, {Port: &named}, {Protocol: &udp}, {}},
					From: []networkingv1.NetworkPolicyPeer{
						{PodSelector: &metav1.LabelSelector{}},
						{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"t": "u"}},
							PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{}}},
						{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
						{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: []string{}}},
						{IPBlock: &networkingv1.IPBlock{CIDR: "1.2.3.4/32"}},
					},
				},
			},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// largeManifestCache is issue 10's world as a manifests.cache (the pods
// and policies of each namespace in a file), plus a file of odd objects.
func largeManifestCache() *ManifestCache {
	s := testsnap.Generate(testsnap.Issue10("node-1")).Snapshot()
	c := &ManifestCache{Version: ManifestCacheVersion, Node: "node-1", Validator: "exe:/x:1:2"}
	for _, ns := range s.Namespaces {
		f := ManifestFile{Name: ns.Name + ".yaml", Sum: fmt.Sprintf("%x", sha256.Sum256([]byte(ns.Name))),
			Namespaces: []policy.Namespace{ns}}
		for _, p := range s.Pods {
			if p.Namespace == ns.Name {
				f.Pods = append(f.Pods, p)
			}
		}
		for _, np := range s.Policies {
			if np.Namespace == ns.Name {
				f.Policies = append(f.Policies, np)
			}
		}
		c.Files = append(c.Files, f)
	}
	c.Files = append(c.Files,
		ManifestFile{Name: "empty.yaml", Sum: "00", Size: 1 << 40, ModTime: -5, Inode: 1<<64 - 1, ReadAt: 1796571393306939793},
		ManifestFile{Name: "odd.yaml", Sum: "01", Namespaces: []policy.Namespace{{Name: "a", Labels: map[string]string{}, Audit: true}},
			Pods: []policy.Pod{
				{Namespace: "a", Name: "p", Labels: map[string]string{}, IPs: []string{}, Ports: []policy.NamedPort{}},
				{Namespace: "a", Name: "q", Node: "n", IPs: []string{"10.0.0.1", "fd00::1"},
					Ports: []policy.NamedPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}, {Name: "neg", Port: -1}}},
			},
			Policies: []networkingv1.NetworkPolicy{everyFieldPolicy(), {}}},
		ManifestFile{Name: "docs.yaml", Sum: "03", Docs: []ManifestDoc{{Sum: "\x00\x01"}, {Sum: "ab", Namespaces: 1, Pods: 2, Policies: 3}}},
		ManifestFile{Name: "empty-slices.yaml", Sum: "02", Docs: []ManifestDoc{}, Namespaces: []policy.Namespace{}, Pods: []policy.Pod{},
			Policies: []networkingv1.NetworkPolicy{}},
	)
	return c
}

// What is written is read back deeply equal, nil and empty slices and
// maps apart, on issue 10's world and on objects with every field set.
func TestManifestCacheRoundTrip(t *testing.T) {
	want := largeManifestCache()
	s := dirFiles(t.TempDir())
	if err := writeManifestCache(s, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifestCache(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("read back differs (-written +read):\n%s", cmp.Diff(want, got))
	}
	data, err := encodeManifestCache(want)
	if err != nil {
		t.Fatal(err)
	}
	again, err := encodeManifestCache(got)
	if err != nil || string(again) != string(data) {
		t.Errorf("encoding what was read back gives other bytes (err %v)", err)
	}
}

// A policy with metadata the format cannot hold is not written (the next
// run decodes the manifests), rather than stored without it.
func TestManifestCacheRefusesMetadataItCannotHold(t *testing.T) {
	np := everyFieldPolicy()
	np.Annotations = map[string]string{"x": "y"}
	c := &ManifestCache{Node: "n", Files: []ManifestFile{{Name: "f.yaml", Policies: []networkingv1.NetworkPolicy{np}}}}
	s := dirFiles(t.TempDir())
	if err := writeManifestCache(s, c); err == nil || !strings.Contains(err.Error(), "ns/all") {
		t.Errorf("write: %v, want an error naming policy ns/all", err)
	}
	if _, err := ReadManifestCache(s); !os.IsNotExist(err) {
		t.Errorf("read after a refused write: %v, want not-exist", err)
	}
}

// A cache cut short, damaged, of the JSON format of version 1 or of
// another version is refused whole.
func TestManifestCacheRefusesDamage(t *testing.T) {
	c := &ManifestCache{Node: "n", Files: []ManifestFile{{Name: "f.yaml", Sum: "ab",
		Pods: []policy.Pod{{Namespace: "a", Name: "p", IPs: []string{"10.0.0.1"}}}, Policies: []networkingv1.NetworkPolicy{everyFieldPolicy()}}}}
	c.Version = ManifestCacheVersion
	good, err := encodeManifestCache(c)
	if err != nil {
		t.Fatal(err)
	}
	resum := func(body []byte) []byte {
		sum := sha256.Sum256(body)
		return append(slices.Clone(body), sum[:]...)
	}
	body := good[:len(good)-sha256.Size]
	v1, _ := json.Marshal(map[string]any{"version": 1, "node": "n", "files": []any{}})
	cases := map[string][]byte{
		"empty":                  {},
		"version 1 (JSON)":       v1,
		"trailing data":          append(slices.Clone(good), 0),
		"checksum cut":           good[:len(good)-1],
		"a byte flipped":         func() []byte { b := slices.Clone(good); b[len(b)/2] ^= 0x40; return b }(),
		"body cut, resummed":     resum(body[:len(body)-3]),
		"body extended, resumed": resum(append(slices.Clone(body), 1)),
		"version 4, resummed": func() []byte {
			e := &encoder{}
			e.buf = append(e.buf, manifestMagic...)
			e.uint(ManifestCacheVersion + 1)
			return resum(e.buf)
		}(),
	}
	for n := len(manifestMagic); n < len(good); n += 7 {
		cases[fmt.Sprintf("cut at %d", n)] = good[:n]
		if n < len(body) {
			cases[fmt.Sprintf("body cut at %d, resummed", n)] = resum(body[:n])
		}
	}
	s := dirFiles(t.TempDir())
	for name, data := range cases {
		if err := os.WriteFile(s.ManifestCachePath(), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadManifestCache(s); err == nil {
			t.Errorf("%s: read %d files, want an error", name, len(got.Files))
		}
	}
	if err := os.WriteFile(s.ManifestCachePath(), good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifestCache(s); err != nil {
		t.Errorf("the good cache: %v", err)
	}
}

// The codec writes every field of what it stores: a field added to these
// types (a new k8s.io/api, say) fails this test until the codec writes it
// and the list below names it.
func TestManifestCacheCodecKnowsEveryField(t *testing.T) {
	var got []string
	var walk func(path string, t reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(path, typ.Elem())
		case reflect.Map:
			walk(path+"[key]", typ.Key())
			walk(path+"[value]", typ.Elem())
		case reflect.Struct:
			if typ == reflect.TypeOf(metav1.ObjectMeta{}) {
				got = append(got, path+" (namespace, name, labels, resourceVersion; the rest refused)")
				return
			}
			for i := range typ.NumField() {
				walk(path+"."+typ.Field(i).Name, typ.Field(i).Type)
			}
		default:
			got = append(got, path+" "+typ.Kind().String())
		}
	}
	walk("", reflect.TypeOf(ManifestCache{}))
	want := []string{
		".Version int", ".Node string", ".Validator string", ".Files.Name string", ".Files.Sum string",
		".Files.Size int64", ".Files.ModTime int64", ".Files.CTime int64", ".Files.Inode uint64", ".Files.ReadAt int64",
		".Files.Docs.Sum string", ".Files.Docs.Namespaces int", ".Files.Docs.Pods int", ".Files.Docs.Policies int",
		".Files.Namespaces.Name string", ".Files.Namespaces.Labels[key] string", ".Files.Namespaces.Labels[value] string",
		".Files.Namespaces.Audit bool",
		".Files.Pods.Namespace string", ".Files.Pods.Name string", ".Files.Pods.Node string",
		".Files.Pods.Labels[key] string", ".Files.Pods.Labels[value] string", ".Files.Pods.IPs string",
		".Files.Pods.Ports.Name string", ".Files.Pods.Ports.Protocol string", ".Files.Pods.Ports.Port int32",
		".Files.Policies.TypeMeta.Kind string", ".Files.Policies.TypeMeta.APIVersion string",
		".Files.Policies.ObjectMeta (namespace, name, labels, resourceVersion; the rest refused)",
	}
	sel := func(p string) []string {
		return []string{p + ".MatchLabels[key] string", p + ".MatchLabels[value] string",
			p + ".MatchExpressions.Key string", p + ".MatchExpressions.Operator string", p + ".MatchExpressions.Values string"}
	}
	spec := ".Files.Policies.Spec"
	want = append(want, sel(spec+".PodSelector")...)
	for _, r := range []string{spec + ".Ingress", spec + ".Egress"} {
		peer := r + ".From"
		if r == spec+".Egress" {
			peer = r + ".To"
		}
		want = append(want, r+".Ports.Protocol string", r+".Ports.Port.Type int64", r+".Ports.Port.IntVal int32",
			r+".Ports.Port.StrVal string", r+".Ports.EndPort int32")
		want = append(want, sel(peer+".PodSelector")...)
		want = append(want, sel(peer+".NamespaceSelector")...)
		want = append(want, peer+".IPBlock.CIDR string", peer+".IPBlock.Except string")
	}
	want = append(want, spec+".PolicyTypes string")
	slices.Sort(got)
	slices.Sort(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("fields of ManifestCache against those the codec writes (-codec +types):\n%s", d)
	}
}

// Any bytes with a right checksum decode to an error or to a cache that
// encodes and decodes to itself; nothing panics or allocates beyond the
// input's size.
func FuzzDecodeManifestCache(f *testing.F) {
	c := &ManifestCache{Version: ManifestCacheVersion, Node: "n", Validator: "v", Files: []ManifestFile{
		{Name: "f.yaml", Sum: "ab", Size: 3, Docs: []ManifestDoc{{Sum: "x", Pods: 1}},
			Namespaces: []policy.Namespace{{Name: "a", Labels: map[string]string{"k": "v"}}},
			Pods:       []policy.Pod{{Namespace: "a", Name: "p", IPs: []string{"10.0.0.1"}, Ports: []policy.NamedPort{{Name: "h", Port: 80}}}},
			Policies:   []networkingv1.NetworkPolicy{everyFieldPolicy()}},
	}}
	good, err := encodeManifestCache(c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[len(manifestMagic) : len(good)-sha256.Size])
	f.Add([]byte{2, 0, 0, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append([]byte(manifestMagic), body...)
		sum := sha256.Sum256(data)
		got, err := decodeManifestCache(append(data, sum[:]...))
		if err != nil {
			return
		}
		again, err := encodeManifestCache(got)
		if err != nil {
			return // metadata the format cannot hold cannot come out of it
		}
		back, err := decodeManifestCache(again)
		if err != nil || !reflect.DeepEqual(got, back) {
			t.Fatalf("decoded cache does not survive a round trip: %v", err)
		}
	})
}

// dirFiles keeps the files of Files in a directory, as state.Store does
// (which this package does not import).
type dirFiles string

func (d dirFiles) path(name string) string                { return filepath.Join(string(d), name) }
func (d dirFiles) SnapshotPath() string                   { return d.path("snapshot.json") }
func (d dirFiles) ManifestCachePath() string              { return d.path("manifests.cache") }
func (d dirFiles) ReadSnapshotData() ([]byte, error)      { return os.ReadFile(d.SnapshotPath()) }
func (d dirFiles) ReadManifestCacheData() ([]byte, error) { return os.ReadFile(d.ManifestCachePath()) }
func (d dirFiles) WriteSnapshotData(data []byte) error {
	return os.WriteFile(d.SnapshotPath(), data, 0o600)
}
func (d dirFiles) WriteSnapshotFrom(encode func(io.Writer) error) error {
	var b bytes.Buffer
	if err := encode(&b); err != nil {
		return err
	}
	return d.WriteSnapshotData(b.Bytes())
}
func (d dirFiles) WriteManifestCacheData(data []byte) error {
	return os.WriteFile(d.ManifestCachePath(), data, 0o600)
}

// writeManifestCache encodes c and stores it in st, as --once does.
func writeManifestCache(st Files, c *ManifestCache) error {
	data, err := EncodeManifestCache(c)
	if err != nil {
		return err
	}
	return st.WriteManifestCacheData(data)
}
