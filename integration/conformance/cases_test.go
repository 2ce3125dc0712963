package conformance

// The cases of kubernetes test/e2e/network/netpol/network_policy.go, one
// entry per upstream It(), in upstream order. Policies keep the upstream
// names; the truth tables are ours, written from each test's intent.
//
// Every grid has one row per source pod and one column per destination
// pod, both in the order
//
//	x/a x/b x/c   y/a y/b y/c   z/a z/b z/c
//
// (a row's cells are grouped by namespace): '.' the connection must open,
// 'X' it must be dropped. The diagonal is always '.' (see doc.go).

// Tables that recur across cases, each named by what it says.
const (
	// allAllowed: no pod is isolated on this port.
	allAllowed = `
		x/a  ... ... ...
		x/b  ... ... ...
		x/c  ... ... ...
		y/a  ... ... ...
		y/b  ... ... ...
		y/c  ... ... ...
		z/a  ... ... ...
		z/b  ... ... ...
		z/c  ... ... ...`

	// noIngressToX: nothing reaches a pod of x (but itself).
	noIngressToX = `
		x/a  .XX ... ...
		x/b  X.X ... ...
		x/c  XX. ... ...
		y/a  XXX ... ...
		y/b  XXX ... ...
		y/c  XXX ... ...
		z/a  XXX ... ...
		z/b  XXX ... ...
		z/c  XXX ... ...`

	// noEgressFromX: no pod of x reaches anything (but itself).
	noEgressFromX = `
		x/a  .XX XXX XXX
		x/b  X.X XXX XXX
		x/c  XX. XXX XXX
		y/a  ... ... ...
		y/b  ... ... ...
		y/c  ... ... ...
		z/a  ... ... ...
		z/b  ... ... ...
		z/c  ... ... ...`

	// xCutOff: nothing in or out of x (but a pod to itself).
	xCutOff = `
		x/a  .XX XXX XXX
		x/b  X.X XXX XXX
		x/c  XX. XXX XXX
		y/a  XXX ... ...
		y/b  XXX ... ...
		y/c  XXX ... ...
		z/a  XXX ... ...
		z/b  XXX ... ...
		z/c  XXX ... ...`

	// noIngressToXA: nothing reaches x/a (but itself).
	noIngressToXA = `
		x/a  ... ... ...
		x/b  X.. ... ...
		x/c  X.. ... ...
		y/a  X.. ... ...
		y/b  X.. ... ...
		y/c  X.. ... ...
		z/a  X.. ... ...
		z/b  X.. ... ...
		z/c  X.. ... ...`

	// xaFromY: x/a is reached from the pods of y only.
	xaFromY = `
		x/a  ... ... ...
		x/b  X.. ... ...
		x/c  X.. ... ...
		y/a  ... ... ...
		y/b  ... ... ...
		y/c  ... ... ...
		z/a  X.. ... ...
		z/b  X.. ... ...
		z/c  X.. ... ...`

	// xaFromXB: x/a is reached from x/b only.
	xaFromXB = `
		x/a  ... ... ...
		x/b  ... ... ...
		x/c  X.. ... ...
		y/a  X.. ... ...
		y/b  X.. ... ...
		y/c  X.. ... ...
		z/a  X.. ... ...
		z/b  X.. ... ...
		z/c  X.. ... ...`

	// xaFromYA: x/a is reached from y/a only.
	xaFromYA = `
		x/a  ... ... ...
		x/b  X.. ... ...
		x/c  X.. ... ...
		y/a  ... ... ...
		y/b  X.. ... ...
		y/c  X.. ... ...
		z/a  X.. ... ...
		z/b  X.. ... ...
		z/c  X.. ... ...`
)

// Policies used by several cases.
var (
	denyIngressX = np("x", "deny-ingress", `
		podSelector: {}
		policyTypes: [Ingress]`)
	denyAllX = np("x", "deny-all", `
		podSelector: {}
		policyTypes: [Ingress, Egress]`)
	// x/a admits pods of namespace y, through the immutable name label.
	xaFromNamespaceY = np("x", "allow-client-a-via-ns-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}`)
	// x/a admits y/a only.
	xaFromPodYA = np("x", "allow-ns-y-pod-a-via-namespace-pod-selector", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Ingress]
		ingress:
		- from:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
		    podSelector: {matchLabels: {pod: a}}`)
	// x/a may send to y/a only.
	xaToPodYA = np("x", "allow-to-ns-y-pod-a", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to:
		  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
		    podSelector: {matchLabels: {pod: a}}`)
	// x/a may send anywhere in a large block around x/b, but not to x/b.
	xaEgressExceptXB = np("x", "allow-client-a-via-cidr-egress-rule", `
		podSelector: {matchLabels: {pod: a}}
		policyTypes: [Egress]
		egress:
		- to:
		  - ipBlock:
		      cidr: {{big "x/b"}}
		      except: [{{host "x/b"}}]`)
)

var cases = []tcase{
	{
		slug:     "default-deny-ingress",
		upstream: "should support a 'default-deny-ingress' policy",
		steps: []step{{
			apply:  []string{denyIngressX},
			expect: []expect{tcp(80, noIngressToX)},
		}},
	},
	{
		slug:     "default-deny-all",
		upstream: "should support a 'default-deny-all' policy",
		steps: []step{{
			apply:  []string{denyAllX},
			expect: []expect{tcp(80, xCutOff)},
		}},
	},
	{
		slug:     "ingress-podselector-same-namespace",
		upstream: "should enforce policy to allow traffic from pods within server namespace based on PodSelector",
		steps: []step{{
			apply: []string{np("x", "x-a-allows-x-b", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - podSelector: {matchLabels: {pod: b}}`)},
			expect: []expect{tcp(80, xaFromXB)},
		}},
	},
	{
		slug:     "ingress-for-a-target",
		upstream: "should enforce policy to allow ingress traffic for a target",
		steps: []step{{
			apply: []string{np("x", "deny-all", `
				podSelector: {}
				policyTypes: [Ingress]`),
				np("x", "allow-all-to-a", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - {podSelector: {}, namespaceSelector: {}}`)},
			// x/a open to every pod; x/b and x/c closed to all.
			expect: []expect{tcp(80, `
				x/a  .XX ... ...
				x/b  ..X ... ...
				x/c  .X. ... ...
				y/a  .XX ... ...
				y/b  .XX ... ...
				y/c  .XX ... ...
				z/a  .XX ... ...
				z/b  .XX ... ...
				z/c  .XX ... ...`)},
		}},
	},
	{
		slug:     "ingress-from-all-namespaces",
		upstream: "should enforce policy to allow ingress traffic from pods in all namespaces",
		steps: []step{{
			apply: []string{np("x", "allow-from-another-ns", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {}}`)},
			expect: []expect{tcp(80, allAllowed)},
		}},
	},
	{
		slug:     "ingress-namespaceselector",
		upstream: "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
		steps: []step{{
			apply:  []string{xaFromNamespaceY},
			expect: []expect{tcp(80, xaFromY)},
		}},
	},
	{
		slug:     "ingress-podselector-matchexpressions",
		upstream: "should enforce policy based on PodSelector with MatchExpressions",
		steps: []step{{
			apply: []string{np("x", "x-a-allows-x-b", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - podSelector:
				      matchExpressions: [{key: pod, operator: In, values: [b]}]`)},
			expect: []expect{tcp(80, xaFromXB)},
		}},
	},
	{
		slug:     "ingress-namespaceselector-matchexpressions",
		upstream: "should enforce policy based on NamespaceSelector with MatchExpressions",
		steps: []step{{
			apply: []string{np("x", "allow-ns-y-match-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector:
				      matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: ["y"]}]`)},
			expect: []expect{tcp(80, xaFromY)},
		}},
	},
	{
		slug:     "ingress-podselector-or-namespaceselector",
		upstream: "should enforce policy based on PodSelector or NamespaceSelector",
		steps: []step{{
			apply: []string{np("x", "allow-ns-y-match-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector:
				      matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]
				  - podSelector: {matchLabels: {pod: b}}`)},
			// Every pod outside x, and x/b: only x/c is kept out of x/a.
			expect: []expect{tcp(80, `
				x/a  ... ... ...
				x/b  ... ... ...
				x/c  X.. ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},
	{
		slug:     "ingress-podselector-and-namespaceselector",
		upstream: "should enforce policy based on PodSelector and NamespaceSelector",
		steps: []step{{
			apply: []string{np("x", "allow-ns-y-podselector-and-nsselector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector:
				      matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]
				    podSelector: {matchLabels: {pod: b}}`)},
			// Pods named b outside x: y/b and z/b.
			expect: []expect{tcp(80, `
				x/a  ... ... ...
				x/b  X.. ... ...
				x/c  X.. ... ...
				y/a  X.. ... ...
				y/b  ... ... ...
				y/c  X.. ... ...
				z/a  X.. ... ...
				z/b  ... ... ...
				z/c  X.. ... ...`)},
		}},
	},
	{
		slug:     "ingress-multiple-podselectors-and-namespaceselectors",
		upstream: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
		steps: []step{{
			apply: []string{np("x", "allow-ns-y-z-pod-b-c", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector:
				      matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]
				    podSelector:
				      matchExpressions: [{key: pod, operator: In, values: [b, c]}]`)},
			// Pods b and c outside x: y/b y/c z/b z/c.
			expect: []expect{tcp(80, `
				x/a  ... ... ...
				x/b  X.. ... ...
				x/c  X.. ... ...
				y/a  X.. ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  X.. ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},
	{
		slug:     "ingress-any-podselectors",
		upstream: "should enforce policy based on any PodSelectors",
		steps: []step{{
			apply: []string{np("x", "allow-ns-x-pod-b-c", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - podSelector: {matchLabels: {pod: b}}
				  - podSelector: {matchLabels: {pod: c}}`)},
			// x/b and x/c (peers without a namespaceSelector stay in x).
			expect: []expect{tcp(80, `
				x/a  ... ... ...
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  X.. ... ...
				y/b  X.. ... ...
				y/c  X.. ... ...
				z/a  X.. ... ...
				z/b  X.. ... ...
				z/c  X.. ... ...`)},
		}},
	},
	{
		slug:     "ingress-pod-in-other-namespace",
		upstream: "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
		steps: []step{{
			apply:  []string{xaFromPodYA},
			expect: []expect{tcp(80, xaFromYA)},
		}},
	},
	{
		slug:     "ingress-ports",
		upstream: "should enforce policy based on Ports",
		steps: []step{{
			apply: []string{np("x", "allow-client-a-via-ns-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
				  ports:
				  - {port: 81, protocol: TCP}`)},
			// y may connect to x/a on exactly one port, 81.
			expect: []expect{tcp(81, xaFromY), tcp(80, noIngressToXA)},
		}},
	},
	{
		slug:     "stacked-policies-overlapping-podselectors",
		upstream: "should enforce multiple, stacked policies with overlapping podSelectors",
		steps: []step{{
			what: "allow y to x/a on TCP 81",
			apply: []string{np("x", "allow-client-a-via-ns-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
				  ports:
				  - {port: 81, protocol: TCP}`)},
			expect: []expect{tcp(81, xaFromY), tcp(80, noIngressToXA)},
		}, {
			what: "add a second policy for TCP 80",
			apply: []string{np("x", "allow-client-a-via-ns-selector-80", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
				  ports:
				  - {port: 80, protocol: TCP}`)},
			expect: []expect{tcp(80, xaFromY), tcp(81, xaFromY)},
		}},
	},
	{
		slug:     "allow-all",
		upstream: "should support allow-all policy",
		steps: []step{{
			apply: []string{np("x", "allow-all", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress:
				- {}`)},
			expect: []expect{tcp(80, allAllowed), tcp(81, allAllowed)},
		}},
	},
	{
		slug:     "ingress-named-port",
		upstream: "should allow ingress access on one named port",
		steps: []step{{
			apply: []string{np("x", "allow-all", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress:
				- ports:
				  - port: serve-81-tcp`)},
			expect: []expect{tcp(81, allAllowed), tcp(80, noIngressToX)},
		}},
	},
	{
		slug:     "ingress-named-port-from-namespace",
		upstream: "should allow ingress access from namespace on one named port",
		steps: []step{{
			apply: []string{np("x", "allow-client-a-via-ns-selector-80", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
				  ports:
				  - {port: serve-80-tcp, protocol: TCP}`)},
			expect: []expect{tcp(80, xaFromY), tcp(81, noIngressToXA)},
		}},
	},
	{
		slug:     "egress-named-port",
		upstream: "should allow egress access on one named port",
		steps: []step{{
			apply: []string{np("x", "allow-egress", `
				podSelector: {}
				policyTypes: [Egress]
				egress:
				- ports:
				  - port: serve-80-tcp`)},
			expect: []expect{tcp(80, allAllowed), tcp(81, noEgressFromX)},
		}},
	},
	{
		slug:     "updated-policy",
		upstream: "should enforce updated policy",
		steps: []step{{
			what: "allow all ingress in x",
			apply: []string{np("x", "allow-all-mutate-to-deny-all", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress:
				- {}`)},
			expect: []expect{tcp(81, allAllowed)},
		}, {
			what: "update the same policy to allow no ingress",
			apply: []string{np("x", "allow-all-mutate-to-deny-all", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress: []`)},
			expect: []expect{tcp(81, noIngressToX)},
		}},
	},
	{
		slug:     "ingress-from-updated-namespace",
		upstream: "should allow ingress access from updated namespace",
		steps: []step{{
			what: "x/a admits namespaces labelled ns2=updated; there are none",
			apply: []string{np("x", "allow-client-a-via-ns-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {ns2: updated}}`)},
			expect: []expect{tcp(80, noIngressToXA)},
		}, {
			what:     "label namespace y ns2=updated",
			nsLabels: map[string]map[string]string{"y": {"ns2": "updated"}},
			expect:   []expect{tcp(80, xaFromY)},
		}},
	},
	{
		slug:     "ingress-from-updated-pod",
		upstream: "should allow ingress access from updated pod",
		steps: []step{{
			what: "x/a admits pods labelled pod=b,pod2=updated; there are none",
			apply: []string{np("x", "allow-client-a-via-pod-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - podSelector: {matchLabels: {pod: b, pod2: updated}}`)},
			expect: []expect{tcp(80, noIngressToXA)},
		}, {
			what:      "label x/b pod2=updated",
			podLabels: map[string]map[string]string{"x/b": {"pod2": "updated"}},
			expect:    []expect{tcp(80, xaFromXB)},
		}},
	},
	{
		slug:     "deny-ingress-from-other-namespaces",
		upstream: "should deny ingress from pods on other namespaces",
		steps: []step{{
			apply: []string{np("x", "deny-empty-policy", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - podSelector: {}`)},
			// Pods of x reach each other; nothing from y or z gets in.
			expect: []expect{tcp(80, `
				x/a  ... ... ...
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  XXX ... ...
				y/b  XXX ... ...
				y/c  XXX ... ...
				z/a  XXX ... ...
				z/b  XXX ... ...
				z/c  XXX ... ...`)},
		}},
	},
	{
		slug:     "deny-ingress-to-updated-pod",
		upstream: "should deny ingress access to updated pod",
		steps: []step{{
			what: "deny ingress to pods labelled target=isolated; there are none",
			apply: []string{np("x", "deny-ingress-via-label-selector", `
				podSelector: {matchLabels: {target: isolated}}
				policyTypes: [Ingress]`)},
			expect: []expect{tcp(80, allAllowed)},
		}, {
			what:      "label x/a target=isolated",
			podLabels: map[string]map[string]string{"x/a": {"target": "isolated"}},
			expect:    []expect{tcp(80, noIngressToXA)},
		}},
	},
	{
		slug:     "deny-egress-podselector",
		upstream: "should deny egress from pods based on PodSelector",
		steps: []step{{
			apply: []string{np("x", "deny-egress-pod-a", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress]`)},
			expect: []expect{tcp(80, `
				x/a  .XX XXX XXX
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},
	{
		slug:     "deny-egress-namespace",
		upstream: "should deny egress from all pods in a namespace",
		steps: []step{{
			apply: []string{np("x", "deny-egress-ns-x", `
				podSelector: {}
				policyTypes: [Egress]`)},
			expect: []expect{tcp(80, noEgressFromX)},
		}},
	},
	{
		slug:     "ingress-and-egress-together",
		upstream: "should work with Ingress, Egress specified together",
		steps: []step{{
			apply: []string{np("x", "allow-client-a-via-pod-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress, Ingress]
				ingress:
				- from:
				  - podSelector: {matchLabels: {pod: b}}
				egress:
				- ports:
				  - port: 80`)},
			// x/a takes connections from x/b only (any port), and opens
			// connections on port 80 only (to anyone).
			expect: []expect{tcp(80, xaFromXB), tcp(81, `
				x/a  .XX XXX XXX
				x/b  ... ... ...
				x/c  X.. ... ...
				y/a  X.. ... ...
				y/b  X.. ... ...
				y/c  X.. ... ...
				z/a  X.. ... ...
				z/b  X.. ... ...
				z/c  X.. ... ...`)},
		}},
	},
	{
		slug:     "egress-denied-on-client-side",
		upstream: "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
		steps: []step{{
			apply: []string{xaToPodYA,
				np("y", "allow-from-xa-on-ya-match-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
				    podSelector: {matchLabels: {pod: a}}`),
				np("y", "allow-from-xa-on-yb-match-selector", `
				podSelector: {matchLabels: {pod: b}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
				    podSelector: {matchLabels: {pod: a}}`)},
			// x/a may only send to y/a. y/a and y/b only admit x/a, so y/b
			// is reached by nobody: x/a's egress forbids what y/b admits.
			expect: []expect{tcp(80, `
				x/a  .XX .XX XXX
				x/b  ... XX. ...
				x/c  ... XX. ...
				y/a  ... .X. ...
				y/b  ... X.. ...
				y/c  ... XX. ...
				z/a  ... XX. ...
				z/b  ... XX. ...
				z/c  ... XX. ...`)},
		}},
	},
	{
		slug:     "egress-to-pod-in-other-namespace",
		upstream: "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
		steps: []step{{
			apply: []string{xaToPodYA},
			expect: []expect{tcp(80, `
				x/a  .XX .XX XXX
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},
	{
		slug:     "ingress-any-port-one-protocol",
		upstream: "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
		steps: []step{{
			apply: []string{np("x", "allow-ingress-by-proto", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- ports:
				  - protocol: TCP`)},
			// Every TCP port of x/a is open to all; no UDP port is.
			expect: []expect{tcp(80, allAllowed), tcp(81, allAllowed), udp(80, noIngressToXA)},
		}},
	},
	{
		slug:     "ingress-allow-all-takes-precedence",
		upstream: "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
		steps: []step{{
			what: "x admits port 80 only",
			apply: []string{np("x", "allow-ingress-port-80", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress:
				- ports:
				  - port: 80`)},
			expect: []expect{tcp(81, noIngressToX), tcp(80, allAllowed)},
		}, {
			what: "add an allow-all ingress policy",
			apply: []string{np("x", "allow-ingress", `
				podSelector: {}
				policyTypes: [Ingress]
				ingress:
				- {}`)},
			expect: []expect{tcp(81, allAllowed)},
		}},
	},
	{
		slug:     "egress-allow-all-takes-precedence",
		upstream: "should enforce multiple egress policies with egress allow-all policy taking precedence",
		steps: []step{{
			what: "x sends on port 80 only",
			apply: []string{np("x", "allow-egress-port-80", `
				podSelector: {}
				policyTypes: [Egress]
				egress:
				- ports:
				  - port: 80`)},
			expect: []expect{tcp(81, noEgressFromX), tcp(80, allAllowed)},
		}, {
			what: "add an allow-all egress policy",
			apply: []string{np("x", "allow-egress", `
				podSelector: {}
				policyTypes: [Egress]
				egress:
				- {}`)},
			expect: []expect{tcp(81, allAllowed)},
		}},
	},
	{
		slug:     "policy-deleted",
		upstream: "should stop enforcing policies after they are deleted",
		steps: []step{{
			what:   "deny all in and out of x",
			apply:  []string{denyAllX},
			expect: []expect{tcp(80, xCutOff)},
		}, {
			what:   "delete the policy",
			remove: []string{"x/deny-all"},
			expect: []expect{tcp(80, allAllowed)},
		}},
	},
	{
		slug:     "egress-to-cidr",
		upstream: "should allow egress access to server in CIDR block",
		steps: []step{{
			apply: []string{np("x", "allow-client-a-via-cidr-egress-rule", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress]
				egress:
				- to:
				  - ipBlock: {cidr: {{host "y/b"}}}`)},
			// x/a may only send to y/b's address.
			expect: []expect{tcp(80, `
				x/a  .XX X.X XXX
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},
	{
		slug:     "egress-to-cidr-except",
		upstream: "should enforce except clause while egress access to server in CIDR block",
		steps: []step{{
			apply: []string{xaEgressExceptXB},
			// x/a may send anywhere in the block but to x/b.
			expect: []expect{tcp(80, `
				x/a  .X. ... ...
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},
	{
		slug:     "cidr-and-except-overlap",
		upstream: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
		steps: []step{{
			what:  "x/a may send to the block around x/b, except x/b",
			apply: []string{xaEgressExceptXB},
			expect: []expect{tcp(80, `
				x/a  .X. ... ...
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}, {
			what: "update that policy (same name, as upstream) to allow x/b's /32 only",
			apply: []string{np("x", "allow-client-a-via-cidr-egress-rule", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress]
				egress:
				- to:
				  - ipBlock: {cidr: {{host "x/b"}}}`)},
			expect: []expect{tcp(80, `
				x/a  ..X XXX XXX
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}, {
			// Ours, beyond upstream: the title's situation with both
			// policies alive at once. x/b is in the except of one and the
			// cidr of the other: the union allows it.
			what: "add the except policy back under another name, beside the /32 one",
			apply: []string{np("x", "allow-client-a-via-cidr-egress-rule-except", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress]
				egress:
				- to:
				  - ipBlock:
				      cidr: {{big "x/b"}}
				      except: [{{host "x/b"}}]`)},
			expect: []expect{tcp(80, allAllowed)},
		}},
	},
	{
		slug:     "ingress-and-egress-independent",
		upstream: "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
		steps: []step{{
			what: "allow all egress of x/a",
			apply: []string{np("x", "allow-egress-for-target", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress]
				egress:
				- {}`)},
			expect: []expect{tcp(80, allAllowed)},
		}, {
			what: "deny all ingress of x/a",
			apply: []string{np("x", "deny-ingress-via-label-selector", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]`)},
			// x/a still sends to everyone; nobody reaches it.
			expect: []expect{tcp(80, noIngressToXA)},
		}},
	},
	{
		slug:     "sctp-not-treated-as-tcp",
		upstream: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
		steps: []step{{
			apply: []string{denyIngressX, np("x", "allow-only-sctp-ingress-on-port-81", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- ports:
				  - {port: 81, protocol: SCTP}`)},
			// Only SCTP 81 is opened on x/a: TCP and UDP 81 stay closed.
			expect: []expect{tcp(81, noIngressToX), udp(81, noIngressToX)},
		}},
	},
	{
		slug:     "sctp-policy-isolates",
		upstream: "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
		steps: []step{{
			apply: []string{np("x", "allow-only-sctp-ingress-on-port-80", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- ports:
				  - {port: 80, protocol: SCTP}`)},
			// x/a is isolated: TCP on 81, and TCP on the SCTP rule's port.
			expect: []expect{tcp(81, noIngressToXA), tcp(80, noIngressToXA)},
		}},
	},
	{
		slug:     "udp-only-policy-denies-tcp",
		upstream: "should not allow access by TCP when a policy specifies only UDP",
		steps: []step{{
			apply: []string{np("x", "allow-only-udp-ingress-on-port-81", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- ports:
				  - {port: 81, protocol: UDP}`)},
			// UDP 81 is open to all; TCP 81 to none.
			expect: []expect{tcp(81, noIngressToXA), udp(81, allAllowed)},
		}},
	},
	{
		slug:     "namespaceselector-default-label",
		upstream: "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
		steps: []step{{
			apply: []string{np("x", "allow-client-a-via-ns-selector-for-immutable-ns-label", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}`)},
			expect: []expect{tcp(80, xaFromY)},
		}},
	},
	{
		slug:     "namespaceselector-matchexpressions-default-label",
		upstream: "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
		steps: []step{{
			apply: []string{np("x", "allow-ns-y-match-selector-for-immutable-ns-label", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Egress]
				egress:
				- to:
				  - namespaceSelector:
				      matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: ["y"]}]`)},
			// x/a may send to x and z, not to y.
			expect: []expect{tcp(80, `
				x/a  ... XXX ...
				x/b  ... ... ...
				x/c  ... ... ...
				y/a  ... ... ...
				y/b  ... ... ...
				y/c  ... ... ...
				z/a  ... ... ...
				z/b  ... ... ...
				z/c  ... ... ...`)},
		}},
	},

	// "NetworkPolicy between server and client using UDP".
	{
		slug:     "udp-default-deny-ingress",
		upstream: "using UDP: should support a 'default-deny-ingress' policy",
		steps: []step{{
			apply: []string{np("x", "deny-all", `
				podSelector: {}
				policyTypes: [Ingress]`)},
			expect: []expect{udp(80, noIngressToX)},
		}},
	},
	{
		slug:     "udp-ingress-ports",
		upstream: "using UDP: should enforce policy based on Ports",
		steps: []step{{
			apply: []string{np("x", "allow-ingress-on-port-81-ns-x", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
				  ports:
				  - {port: 81, protocol: UDP}`)},
			// y reaches x/a on UDP 81 only; TCP 81 is closed to all.
			expect: []expect{udp(81, xaFromY), tcp(81, noIngressToXA)},
		}},
	},
	{
		slug:     "udp-ingress-pod-in-other-namespace",
		upstream: "using UDP: should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
		steps: []step{{
			apply:  []string{xaFromPodYA},
			expect: []expect{udp(80, xaFromYA)},
		}},
	},

	// "NetworkPolicy between server and client using SCTP": the policies
	// are applied in both orders, the SCTP probe is skipped, and TCP on the
	// same port is probed with what the policy means for TCP.
	{
		slug:     "sctp-default-deny-ingress",
		upstream: "using SCTP: should support a 'default-deny-ingress' policy",
		steps: []step{{
			apply: []string{np("x", "deny-all", `
				podSelector: {}
				policyTypes: [Ingress]`)},
			skipped: []string{"sctp/80"},
			expect:  []expect{tcp(80, noIngressToX)},
		}},
	},
	{
		slug:     "sctp-ingress-ports",
		upstream: "using SCTP: should enforce policy based on Ports",
		steps: []step{{
			apply: []string{np("x", "allow-ingress-on-port-81-ns-x", `
				podSelector: {matchLabels: {pod: a}}
				policyTypes: [Ingress]
				ingress:
				- from:
				  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}
				  ports:
				  - {port: 81, protocol: SCTP}`)},
			skipped: []string{"sctp/81"},
			// The rule opens SCTP only: TCP 81 of x/a is closed to all.
			expect: []expect{tcp(81, noIngressToXA)},
		}},
	},
	{
		slug:     "sctp-ingress-pod-in-other-namespace",
		upstream: "using SCTP: should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
		steps: []step{{
			apply:   []string{xaFromPodYA},
			skipped: []string{"sctp/80"},
			expect:  []expect{tcp(80, xaFromYA)},
		}},
	},
}
