package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// validSnapshot returns a snapshot that uses every field ValidateSnapshot
// checks, all valid.
func validSnapshot() *Snapshot {
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	port80, named, endPort := intstr.FromInt32(80), intstr.FromString("http-alt"), int32(90)
	return &Snapshot{
		Version: SnapshotVersion,
		Node:    "node-1",
		Namespaces: []Namespace{
			{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}},
			{Name: "prod", Labels: map[string]string{"project": "myproject", "team": ""}},
		},
		Pods: []Pod{
			{Namespace: "default", Name: "db-0", Node: "node-1", Labels: map[string]string{"role": "db"},
				IPs:   []string{"10.244.0.5", "fd00::5"},
				Ports: []NamedPort{{Name: "redis", Protocol: tcp, Port: 6379}, {Name: "dns", Protocol: "", Port: 53}}},
			{Namespace: "prod", Name: "web.v1", Labels: map[string]string{"app.kubernetes.io/name": "web"}},
		},
		Policies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "test-network-policy",
				Labels: map[string]string{"owner": "ops"}},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "db"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{
						{IPBlock: &networkingv1.IPBlock{CIDR: "172.17.0.0/16", Except: []string{"172.17.1.0/24"}}},
						{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: "project", Operator: metav1.LabelSelectorOpIn, Values: []string{"myproject"}},
							{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
						}}, PodSelector: &metav1.LabelSelector{}},
					},
					Ports: []networkingv1.NetworkPolicyPort{
						{Protocol: &tcp, Port: &port80, EndPort: &endPort},
						{Protocol: &sctp, Port: &named},
						{Protocol: &udp},
					},
				}},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/8",
						Except: []string{"fd00:1::/32"}}}},
				}},
			},
		}},
	}
}

func TestValidateSnapshotValid(t *testing.T) {
	if err := ValidateSnapshot(validSnapshot()); err != nil {
		t.Fatalf("ValidateSnapshot(valid) = %v", err)
	}
	if err := ValidateSnapshot(&Snapshot{}); err != nil {
		t.Fatalf("ValidateSnapshot(empty) = %v", err)
	}
}

func TestValidateSnapshotNil(t *testing.T) {
	if err := ValidateSnapshot(nil); err == nil {
		t.Fatal("ValidateSnapshot(nil) = nil, want error")
	}
}

// policy0 is the error prefix of the valid snapshot's only policy.
const policy0 = `policies[0] "default/test-network-policy": `

// str and proto make pointers for table rows.
func str(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
func num(n int32) *intstr.IntOrString  { v := intstr.FromInt32(n); return &v }
func proto(p string) *corev1.Protocol  { v := corev1.Protocol(p); return &v }

func TestValidateSnapshotRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Snapshot)
		want   []string // prefix of each joined error line, in order
	}{
		{"namespace name not a DNS label", func(s *Snapshot) { s.Namespaces[1].Name = "Prod.x" },
			[]string{`namespaces[1] "Prod.x": name: Invalid value: "Prod.x"`}},
		{"namespace name empty", func(s *Snapshot) { s.Namespaces[1].Name = "" },
			[]string{`namespaces[1] "": name: Required value`}},
		{"namespace label key", func(s *Snapshot) { s.Namespaces[1].Labels["-bad"] = "x" },
			[]string{`namespaces[1] "prod": labels: Invalid value: "-bad"`}},
		{"namespace label value", func(s *Snapshot) { s.Namespaces[1].Labels["team"] = "a b" },
			[]string{`namespaces[1] "prod": labels[team]: Invalid value: "a b"`}},
		{"duplicate namespace", func(s *Snapshot) { s.Namespaces = append(s.Namespaces, Namespace{Name: "prod"}) },
			[]string{`namespaces[2] "prod": name: Duplicate value: "prod"`}},
		{"pod name not a DNS subdomain", func(s *Snapshot) { s.Pods[0].Name = "DB_0" },
			[]string{`pods[0] "default/DB_0": name: Invalid value: "DB_0"`}},
		{"pod namespace empty", func(s *Snapshot) { s.Pods[0].Namespace = "" },
			[]string{`pods[0] "/db-0": namespace: Required value`}},
		{"pod node name", func(s *Snapshot) { s.Pods[0].Node = "Node_1" },
			[]string{`pods[0] "default/db-0": node: Invalid value: "Node_1"`}},
		{"pod label value too long", func(s *Snapshot) { s.Pods[0].Labels["role"] = strings.Repeat("a", 64) },
			[]string{`pods[0] "default/db-0": labels[role]: Invalid value: "` + strings.Repeat("a", 64) + `"`}},
		{"pod IP does not parse", func(s *Snapshot) { s.Pods[0].IPs[1] = "fd00::5::1" },
			[]string{`pods[0] "default/db-0": ips[1]: Invalid value: "fd00::5::1": must be a valid IP address`}},
		{"pod IP IPv4-mapped", func(s *Snapshot) { s.Pods[0].IPs[0] = "::ffff:10.244.0.5" },
			[]string{`pods[0] "default/db-0": ips[0]: Invalid value: "::ffff:10.244.0.5": must not be an IPv4-mapped IPv6 address`}},
		{"pod IP IPv4-mapped, hex", func(s *Snapshot) { s.Pods[0].IPs[0] = "::FFFF:af4:5" },
			[]string{`pods[0] "default/db-0": ips[0]: Invalid value: "::FFFF:af4:5": must not be an IPv4-mapped IPv6 address`}},
		{"pod two IPv4", func(s *Snapshot) { s.Pods[0].IPs[1] = "10.244.0.6" },
			[]string{`pods[0] "default/db-0": ips[1]: Invalid value: "10.244.0.6": may specify no more than one IP for each IP family`}},
		{"named port bad name", func(s *Snapshot) { s.Pods[0].Ports[0].Name = "redis_port" },
			[]string{`pods[0] "default/db-0": ports[0].name: Invalid value: "redis_port"`}},
		{"named port zero", func(s *Snapshot) { s.Pods[0].Ports[1].Port = 0 },
			[]string{`pods[0] "default/db-0": ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive`}},
		{"named port protocol", func(s *Snapshot) { s.Pods[0].Ports[1].Protocol = "ICMP" },
			[]string{`pods[0] "default/db-0": ports[1].protocol: Unsupported value: "ICMP"`}},
		{"duplicate pod", func(s *Snapshot) { s.Pods = append(s.Pods, Pod{Namespace: "prod", Name: "web.v1"}) },
			[]string{`pods[2] "prod/web.v1": name: Duplicate value: "web.v1"`}},
		{"policy namespace empty", func(s *Snapshot) { s.Policies[0].Namespace = "" },
			[]string{`policies[0] "/test-network-policy": metadata.namespace: Required value`}},
		{"policy name", func(s *Snapshot) { s.Policies[0].Name = "Test" },
			[]string{`policies[0] "default/Test": metadata.name: Invalid value: "Test"`}},
		{"policy label key", func(s *Snapshot) { s.Policies[0].Labels["a/b/c"] = "" },
			[]string{policy0 + `metadata.labels: Invalid value: "a/b/c"`}},
		{"duplicate policy", func(s *Snapshot) { s.Policies = append(s.Policies, s.Policies[0]) },
			[]string{`policies[1] "default/test-network-policy": metadata.name: Duplicate value: "test-network-policy"`}},
		{"podSelector matchLabels value", func(s *Snapshot) { s.Policies[0].Spec.PodSelector.MatchLabels["role"] = "db!" },
			[]string{policy0 + `spec.podSelector.matchLabels[role]: Invalid value: "db!"`}},
		{"In without values", func(s *Snapshot) { peer(s, 1).NamespaceSelector.MatchExpressions[0].Values = nil },
			[]string{policy0 + `spec.ingress[0].from[1].namespaceSelector.matchExpressions[0].values: Required value`}},
		{"DoesNotExist with values", func(s *Snapshot) { peer(s, 1).NamespaceSelector.MatchExpressions[1].Values = []string{"x"} },
			[]string{policy0 + `spec.ingress[0].from[1].namespaceSelector.matchExpressions[1].values: Forbidden`}},
		{"unknown operator", func(s *Snapshot) { peer(s, 1).NamespaceSelector.MatchExpressions[1].Operator = "Gt" },
			[]string{policy0 + `spec.ingress[0].from[1].namespaceSelector.matchExpressions[1].operator: Invalid value: "Gt"`}},
		{"expression key", func(s *Snapshot) { peer(s, 1).NamespaceSelector.MatchExpressions[0].Key = "bad key" },
			[]string{policy0 + `spec.ingress[0].from[1].namespaceSelector.matchExpressions[0].key: Invalid value: "bad key"`}},
		{"expression value", func(s *Snapshot) { peer(s, 1).NamespaceSelector.MatchExpressions[0].Values[0] = "-x" },
			[]string{policy0 + `spec.ingress[0].from[1].namespaceSelector.matchExpressions[0].values[0]: Invalid value: "-x"`}},
		{"policyTypes value", func(s *Snapshot) { s.Policies[0].Spec.PolicyTypes[1] = "ingress" },
			[]string{policy0 + `spec.policyTypes[1]: Unsupported value: "ingress"`}},
		{"port protocol", func(s *Snapshot) { port(s, 2).Protocol = proto("ICMP") },
			[]string{policy0 + `spec.ingress[0].ports[2].protocol: Unsupported value: "ICMP"`}},
		{"port zero", func(s *Snapshot) { port(s, 0).Port = num(0) },
			[]string{policy0 + `spec.ingress[0].ports[0].port: Invalid value: 0`}},
		{"port too large", func(s *Snapshot) { port(s, 0).Port, port(s, 0).EndPort = num(65536), nil },
			[]string{policy0 + `spec.ingress[0].ports[0].port: Invalid value: 65536`}},
		{"port bad name", func(s *Snapshot) { port(s, 1).Port = str("http_alt") },
			[]string{policy0 + `spec.ingress[0].ports[1].port: Invalid value: "http_alt"`}},
		{"endPort with named port", func(s *Snapshot) { port(s, 1).EndPort = port(s, 0).EndPort },
			[]string{policy0 + `spec.ingress[0].ports[1].endPort: Invalid value: 90: may not be specified when` +
				" `port` is non-numeric"}},
		{"endPort without port", func(s *Snapshot) { port(s, 2).EndPort = port(s, 0).EndPort },
			[]string{policy0 + `spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when` +
				" `port` is not specified"}},
		{"endPort below port", func(s *Snapshot) { port(s, 0).Port = num(100) },
			[]string{policy0 + "spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`"}},
		{"endPort too large", func(s *Snapshot) { e := int32(70000); port(s, 0).EndPort = &e },
			[]string{policy0 + `spec.ingress[0].ports[0].endPort: Invalid value: 70000: must be between 1 and 65535, inclusive`}},
		{"cidr empty", func(s *Snapshot) { peer(s, 0).IPBlock.CIDR = "" },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.cidr: Required value`}},
		{"cidr does not parse", func(s *Snapshot) { peer(s, 0).IPBlock.CIDR = "172.17.0.0" },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "172.17.0.0"`}},
		{"except does not parse", func(s *Snapshot) { peer(s, 0).IPBlock.Except[0] = "172.17.1.0/33" },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "172.17.1.0/33"`}},
		{"except other family", func(s *Snapshot) { peer(s, 0).IPBlock.Except[0] = "fd00::/64" },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "fd00::/64": must be of the same IP family`}},
		{"except other family, v6 cidr", func(s *Snapshot) { s.Policies[0].Spec.Egress[0].To[0].IPBlock.Except[0] = "10.0.0.0/8" },
			[]string{policy0 + `spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be of the same IP family`}},
		{"cidr IPv4-mapped", func(s *Snapshot) { peer(s, 0).IPBlock.CIDR = "::ffff:172.17.0.0/112" },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "::ffff:172.17.0.0/112": must not have an IPv4-mapped IPv6 address`}},
		{"cidr all of IPv4-mapped", func(s *Snapshot) { peer(s, 0).IPBlock = &networkingv1.IPBlock{CIDR: "::ffff:0:0/96"} },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "::ffff:0:0/96": must not have an IPv4-mapped IPv6 address`}},
		{"except IPv4-mapped", func(s *Snapshot) { peer(s, 0).IPBlock.Except[0] = "::ffff:172.17.1.0/120" },
			[]string{policy0 + `spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "::ffff:172.17.1.0/120": must not have an IPv4-mapped IPv6 address`}},
		{"except IPv4-mapped in a v6 cidr", func(s *Snapshot) {
			s.Policies[0].Spec.Egress[0].To[0].IPBlock = &networkingv1.IPBlock{CIDR: "::/0", Except: []string{"::ffff:0:0/96"}}
		}, []string{policy0 + `spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "::ffff:0:0/96": must not have an IPv4-mapped IPv6 address`}},
		{"except outside cidr", func(s *Snapshot) { peer(s, 0).IPBlock.Except[0] = "172.18.1.0/24" },
			[]string{policy0 + "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"172.18.1.0/24\": must be a strict subset of `cidr`"}},
		{"except equals cidr", func(s *Snapshot) { peer(s, 0).IPBlock.Except[0] = "172.17.0.0/16" },
			[]string{policy0 + "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"172.17.0.0/16\": must be a strict subset of `cidr`"}},
		{"egress except outside v6 cidr", func(s *Snapshot) { s.Policies[0].Spec.Egress[0].To[0].IPBlock.Except[0] = "fe80::/16" },
			[]string{policy0 + `spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "fe80::/16"`}},
		{"empty peer", func(s *Snapshot) { *peer(s, 1) = networkingv1.NetworkPolicyPeer{} },
			[]string{policy0 + `spec.ingress[0].from[1]: Required value: must specify a peer`}},
		{"ipBlock with selector", func(s *Snapshot) { peer(s, 0).PodSelector = &metav1.LabelSelector{} },
			[]string{policy0 + `spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer`}},
		{"all problems joined", func(s *Snapshot) {
			s.Namespaces[0].Name = "A"
			s.Pods[1].IPs = []string{"x"}
			port(s, 0).Port = num(0)
			s.Policies[0].Spec.PolicyTypes[0] = "Both"
		}, []string{
			`namespaces[0] "A": name: Invalid value: "A"`,
			`pods[1] "prod/web.v1": ips[0]: Invalid value: "x"`,
			policy0 + `spec.ingress[0].ports[0].port: Invalid value: 0`,
			policy0 + `spec.policyTypes[0]: Unsupported value: "Both"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSnapshot()
			tt.mutate(s)
			err := ValidateSnapshot(s)
			if err == nil {
				t.Fatal("ValidateSnapshot = nil, want error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("error %d = %q\nwant prefix %q", i, lines[i], want)
				}
			}
		})
	}
}

// peer returns the i-th peer of the first ingress rule of the first policy.
func peer(s *Snapshot, i int) *networkingv1.NetworkPolicyPeer {
	return &s.Policies[0].Spec.Ingress[0].From[i]
}

// port returns the i-th port of the first ingress rule of the first policy.
func port(s *Snapshot, i int) *networkingv1.NetworkPolicyPort {
	return &s.Policies[0].Spec.Ingress[0].Ports[i]
}

// TestValidateIPBlockWholeFamilies: /0 of either family, with excepts of its
// own family (a /1 half, a /128 or /32 host), is valid.
func TestValidateIPBlockWholeFamilies(t *testing.T) {
	for _, b := range []networkingv1.IPBlock{
		{CIDR: "::/0", Except: []string{"::/1", "fd00::1/128"}},
		{CIDR: "0.0.0.0/0", Except: []string{"128.0.0.0/1", "10.0.0.1/32"}},
		{CIDR: "fd00::1/128"},
	} {
		if fes := validateIPBlock(&b, nil); len(fes) != 0 {
			t.Errorf("validateIPBlock(%v) = %v", b, fes)
		}
	}
}
