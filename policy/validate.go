package policy

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// supportedProtocols are the protocols of NetworkPolicy and container ports.
var supportedProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// supportedPolicyTypes are the values of spec.policyTypes.
var supportedPolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}

// ValidateSnapshot rejects what the Kubernetes API server would reject for
// the namespaces, pods and networking.k8s.io/v1 NetworkPolicies a snapshot
// holds, plus duplicate objects. It returns every problem found, joined with
// errors.Join; each one names the object ("pods[0] \"ns/name\": ") and the
// field path, as ValidateNamespace, ValidatePod and ValidatePolicy report
// it.
func ValidateSnapshot(s *Snapshot) error {
	if s == nil {
		return errors.New("snapshot: is nil")
	}
	var errs []error
	seen := map[string]bool{}
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		fes := ValidateNamespace(ns)
		fes = appendDuplicate(fes, seen, "namespace "+ns.Name, field.NewPath("name"), ns.Name)
		errs = appendObjectErrors(errs, fmt.Sprintf("namespaces[%d] %q", i, ns.Name), fes)
	}
	for i := range s.Pods {
		p := &s.Pods[i]
		fes := ValidatePod(p)
		fes = appendDuplicate(fes, seen, "pod "+p.Key(), field.NewPath("name"), p.Name)
		errs = appendObjectErrors(errs, fmt.Sprintf("pods[%d] %q", i, p.Key()), fes)
	}
	for i := range s.Policies {
		np := &s.Policies[i]
		key := np.Namespace + "/" + np.Name
		fes := ValidatePolicy(np)
		fes = appendDuplicate(fes, seen, "policy "+key, field.NewPath("metadata", "name"), np.Name)
		errs = appendObjectErrors(errs, fmt.Sprintf("policies[%d] %q", i, key), fes)
	}
	return errors.Join(errs...)
}

// appendDuplicate adds a Duplicate error when key was seen before.
func appendDuplicate(fes field.ErrorList, seen map[string]bool, key string, path *field.Path, value string) field.ErrorList {
	if seen[key] {
		return append(fes, field.Duplicate(path, value))
	}
	seen[key] = true
	return fes
}

// appendObjectErrors wraps each field error with the object it belongs to.
func appendObjectErrors(errs []error, object string, fes field.ErrorList) []error {
	for _, fe := range fes {
		errs = append(errs, fmt.Errorf("%s: %w", object, fe))
	}
	return errs
}

// ValidateNamespace checks a namespace as core/v1 Namespace validation
// does. Each error's field path is the snapshot's ("labels[team]"), relative
// to the namespace; the caller names the object.
func ValidateNamespace(ns *Namespace) field.ErrorList {
	fes := validateName(ns.Name, field.NewPath("name"), validation.IsDNS1123Label)
	return append(fes, validateLabels(ns.Labels, field.NewPath("labels"))...)
}

// ValidatePod checks what the snapshot keeps of a core/v1 Pod. Each error's
// field path is the snapshot's ("ips[0]", "ports[1].protocol"), relative to
// the pod; the caller names the object.
func ValidatePod(p *Pod) field.ErrorList {
	fes := validateName(p.Namespace, field.NewPath("namespace"), validation.IsDNS1123Label)
	fes = append(fes, validateName(p.Name, field.NewPath("name"), validation.IsDNS1123Subdomain)...)
	if p.Node != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p.Node) {
			fes = append(fes, field.Invalid(field.NewPath("node"), p.Node, msg))
		}
	}
	fes = append(fes, validateLabels(p.Labels, field.NewPath("labels"))...)
	fes = append(fes, validatePodIPs(p.IPs, field.NewPath("ips"))...)
	for i := range p.Ports {
		fes = append(fes, validateNamedPort(&p.Ports[i], field.NewPath("ports").Index(i))...)
	}
	return fes
}

// validatePodIPs checks status.podIPs: valid addresses, none IPv4-mapped,
// at most one per family.
//
// An IPv4-mapped IPv6 address ("::ffff:10.0.0.1") is refused, as the API
// server refuses it in status.podIPs (StrictIPCIDRValidation, on by default
// since Kubernetes 1.36): it is IPv4 to some software and IPv6 to other,
// and no pod's traffic carries it.
func validatePodIPs(ips []string, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	seenFamily := map[bool]bool{}
	for i, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			fes = append(fes, field.Invalid(path.Index(i), s, "must be a valid IP address"))
			continue
		}
		if ip.To4() != nil && strings.Contains(s, ":") {
			fes = append(fes, field.Invalid(path.Index(i), s, "must not be an IPv4-mapped IPv6 address"))
			continue
		}
		v4 := ip.To4() != nil
		if seenFamily[v4] {
			fes = append(fes, field.Invalid(path.Index(i), s, "may specify no more than one IP for each IP family"))
		}
		seenFamily[v4] = true
	}
	return fes
}

// validateNamedPort checks a named container port.
func validateNamedPort(np *NamedPort, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	for _, msg := range validation.IsValidPortName(np.Name) {
		fes = append(fes, field.Invalid(path.Child("name"), np.Name, msg))
	}
	for _, msg := range validation.IsValidPortNum(int(np.Port)) {
		fes = append(fes, field.Invalid(path.Child("port"), np.Port, msg))
	}
	return append(fes, validateProtocol(np.Protocol, path.Child("protocol"))...)
}

// validateProtocol accepts TCP, UDP, SCTP and empty (which the API defaults
// to TCP).
func validateProtocol(p corev1.Protocol, path *field.Path) field.ErrorList {
	if p == "" || slices.Contains(supportedProtocols, p) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, p, supportedProtocols)}
}

// validateName checks a required object name with the given rule.
func validateName(name string, path *field.Path, rule func(string) []string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	var fes field.ErrorList
	for _, msg := range rule(name) {
		fes = append(fes, field.Invalid(path, name, msg))
	}
	return fes
}

// validateLabels checks label keys and values, in key order so the errors
// are deterministic.
func validateLabels(labels map[string]string, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, msg := range validation.IsQualifiedName(k) {
			fes = append(fes, field.Invalid(path, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(labels[k]) {
			fes = append(fes, field.Invalid(path.Key(k), labels[k], msg))
		}
	}
	return fes
}

// validateSelector checks a label selector as metav1 validation does, then
// converts it to be sure the selector library accepts it too.
func validateSelector(sel *metav1.LabelSelector, path *field.Path) field.ErrorList {
	if sel == nil {
		return nil
	}
	fes := validateLabels(sel.MatchLabels, path.Child("matchLabels"))
	for i, req := range sel.MatchExpressions {
		fes = append(fes, validateRequirement(req, path.Child("matchExpressions").Index(i))...)
	}
	if len(fes) == 0 {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			fes = append(fes, field.Invalid(path, sel.String(), err.Error()))
		}
	}
	return fes
}

// validateRequirement checks one matchExpressions entry: In and NotIn need
// values, Exists and DoesNotExist take none.
func validateRequirement(req metav1.LabelSelectorRequirement, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	switch req.Operator {
	case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
		if len(req.Values) == 0 {
			fes = append(fes, field.Required(path.Child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
		}
	case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
		if len(req.Values) > 0 {
			fes = append(fes, field.Forbidden(path.Child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
		}
	default:
		fes = append(fes, field.Invalid(path.Child("operator"), req.Operator, "not a valid selector operator"))
	}
	for _, msg := range validation.IsQualifiedName(req.Key) {
		fes = append(fes, field.Invalid(path.Child("key"), req.Key, msg))
	}
	for i, v := range req.Values {
		for _, msg := range validation.IsValidLabelValue(v) {
			fes = append(fes, field.Invalid(path.Child("values").Index(i), v, msg))
		}
	}
	return fes
}

// ValidatePolicy checks a networking.k8s.io/v1 NetworkPolicy. Each error's
// field path is the API's ("spec.ingress[0].from[1].ipBlock.cidr"),
// relative to the policy; the caller names the object.
func ValidatePolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	meta := field.NewPath("metadata")
	fes := validateName(np.Namespace, meta.Child("namespace"), validation.IsDNS1123Label)
	fes = append(fes, validateName(np.Name, meta.Child("name"), validation.IsDNS1123Subdomain)...)
	fes = append(fes, validateLabels(np.Labels, meta.Child("labels"))...)

	spec := field.NewPath("spec")
	fes = append(fes, validateSelector(&np.Spec.PodSelector, spec.Child("podSelector"))...)
	for i := range np.Spec.Ingress {
		rule := &np.Spec.Ingress[i]
		path := spec.Child("ingress").Index(i)
		fes = append(fes, validateRule(rule.Ports, rule.From, path, "from")...)
	}
	for i := range np.Spec.Egress {
		rule := &np.Spec.Egress[i]
		path := spec.Child("egress").Index(i)
		fes = append(fes, validateRule(rule.Ports, rule.To, path, "to")...)
	}
	return append(fes, validatePolicyTypes(np.Spec.PolicyTypes, spec.Child("policyTypes"))...)
}

// validatePolicyTypes accepts Ingress and Egress. A repeated type is
// accepted, as the API server accepts it (rejecting what the API stores
// would drop a policy that is in force).
func validatePolicyTypes(pts []networkingv1.PolicyType, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	for i, t := range pts {
		if !slices.Contains(supportedPolicyTypes, t) {
			fes = append(fes, field.NotSupported(path.Index(i), t, supportedPolicyTypes))
		}
	}
	return fes
}

// validateRule checks the ports and peers of one ingress or egress rule;
// peersName is "from" or "to".
func validateRule(ports []networkingv1.NetworkPolicyPort, peers []networkingv1.NetworkPolicyPeer,
	path *field.Path, peersName string) field.ErrorList {
	var fes field.ErrorList
	for i := range ports {
		fes = append(fes, validatePolicyPort(&ports[i], path.Child("ports").Index(i))...)
	}
	for i := range peers {
		fes = append(fes, validatePeer(&peers[i], path.Child(peersName).Index(i))...)
	}
	return fes
}

// validatePolicyPort checks protocol, port (number or IANA_SVC_NAME) and
// endPort (only with a numeric port, >= port, <= 65535).
func validatePolicyPort(p *networkingv1.NetworkPolicyPort, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	if p.Protocol != nil {
		fes = append(fes, validateProtocol(*p.Protocol, path.Child("protocol"))...)
	}
	switch {
	case p.Port == nil:
		if p.EndPort != nil {
			fes = append(fes, field.Invalid(path.Child("endPort"), *p.EndPort, "may not be specified when `port` is not specified"))
		}
	case p.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(p.Port.IntVal)) {
			fes = append(fes, field.Invalid(path.Child("port"), p.Port.IntVal, msg))
		}
		if p.EndPort != nil {
			if *p.EndPort < p.Port.IntVal {
				fes = append(fes, field.Invalid(path.Child("endPort"), *p.EndPort, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*p.EndPort)) {
				fes = append(fes, field.Invalid(path.Child("endPort"), *p.EndPort, msg))
			}
		}
	default:
		if p.EndPort != nil {
			fes = append(fes, field.Invalid(path.Child("endPort"), *p.EndPort, "may not be specified when `port` is non-numeric"))
		}
		for _, msg := range validation.IsValidPortName(p.Port.StrVal) {
			fes = append(fes, field.Invalid(path.Child("port"), p.Port.StrVal, msg))
		}
	}
	return fes
}

// validatePeer checks one from/to entry: at least one of podSelector,
// namespaceSelector and ipBlock, and ipBlock alone.
func validatePeer(peer *networkingv1.NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var fes field.ErrorList
	n := 0
	if peer.PodSelector != nil {
		n++
		fes = append(fes, validateSelector(peer.PodSelector, path.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		fes = append(fes, validateSelector(peer.NamespaceSelector, path.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		n++
		fes = append(fes, validateIPBlock(peer.IPBlock, path.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		fes = append(fes, field.Required(path, "must specify a peer"))
	case n > 1 && peer.IPBlock != nil:
		fes = append(fes, field.Forbidden(path, "may not specify both ipBlock and another peer"))
	}
	return fes
}

// validateIPBlock checks that cidr parses and that every except parses, is
// of the same family and lies strictly inside cidr. Neither may have an
// IPv4-mapped IPv6 address ("::ffff:10.0.0.0/104", "::ffff:0:0/96"), as
// the API server refuses them (StrictIPCIDRValidation, on by default since
// Kubernetes 1.36): Go reads such a prefix as IPv4 (the /96 as 0.0.0.0/0),
// ipset as IPv6, so no reading of it could be trusted.
func validateIPBlock(b *networkingv1.IPBlock, path *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(path.Child("cidr"), "")}
	}
	cidr, fe := parseBlockCIDR(b.CIDR, path.Child("cidr"))
	if fe != nil {
		return field.ErrorList{fe}
	}
	var fes field.ErrorList
	cidrOnes, cidrBits := cidr.Mask.Size()
	for i, s := range b.Except {
		exceptPath := path.Child("except").Index(i)
		except, fe := parseBlockCIDR(s, exceptPath)
		if fe != nil {
			fes = append(fes, fe)
			continue
		}
		ones, bits := except.Mask.Size()
		switch {
		case bits != cidrBits:
			fes = append(fes, field.Invalid(exceptPath, s, "must be of the same IP family as `cidr`"))
		case !cidr.Contains(except.IP) || ones <= cidrOnes:
			fes = append(fes, field.Invalid(exceptPath, s, "must be a strict subset of `cidr`"))
		}
	}
	return fes
}

// parseBlockCIDR parses an ipBlock cidr or except, refusing one that does
// not parse or has an IPv4-mapped IPv6 address.
func parseBlockCIDR(s string, path *field.Path) (*net.IPNet, *field.Error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, field.Invalid(path, s, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
	}
	if _, bits := n.Mask.Size(); bits == 8*net.IPv6len && ip.To4() != nil {
		return nil, field.Invalid(path, s, "must not have an IPv4-mapped IPv6 address")
	}
	return n, nil
}
