package node

import "slices"

// OwnAddresses returns the attachments with every address held by more than
// one of them left only to its owner: the attachment recorded last
// (Created; on a tie, the greatest container ID, then interface name). A
// leftover record (a lost DEL, a reused StatefulSet name, an address that
// host-local handed to a new pod) thus never puts another pod's address
// into its pod's sets. Addresses come out in canonical form ("fd00::1",
// "10.0.0.1" for "::ffff:10.0.0.1"), each once, so that what reaches a set
// is what the kernel compares. Attachments are copied; the input is not
// modified.
// Compile applies it; callers that evaluate the same records (explain)
// apply it too, to agree with Compile.
func OwnAddresses(atts []Attachment) []Attachment {
	owner := map[string]int{} // address -> index of its owner in atts
	for i := range atts {
		for _, ip := range atts[i].IPs {
			ip = CanonicalIP(ip)
			if j, ok := owner[ip]; !ok || newer(&atts[i], &atts[j]) {
				owner[ip] = i
			}
		}
	}
	out := make([]Attachment, len(atts))
	for i, a := range atts {
		a.IPs = nil
		for _, ip := range atts[i].IPs {
			ip = CanonicalIP(ip)
			if owner[ip] == i && !slices.Contains(a.IPs, ip) {
				a.IPs = append(a.IPs, ip)
			}
		}
		out[i] = a
	}
	return out
}

// newer reports whether a was recorded after b (ties broken by identity,
// so that the order of the records does not matter).
func newer(a, b *Attachment) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	if a.ContainerID != b.ContainerID {
		return a.ContainerID > b.ContainerID
	}
	return a.IfName > b.IfName
}
