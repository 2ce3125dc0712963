package policy

import "strings"

// podChanges are the pods added, removed or changed between two
// snapshots: by name, and by position in each (a pod added is in next
// only, one removed in last only).
type podChanges struct {
	refs       map[podRef]bool
	last, next []int
}

// changedPods returns the pods added, removed or changed between last and
// next; ok false when there are more than patchMaxPods. Snapshots list
// their pods in the same order when few changed: those are compared side
// by side, without building a map of either.
func changedPods(last, next *Snapshot) (*podChanges, bool) {
	out := &podChanges{refs: map[podRef]bool{}}
	if len(last.Pods) == len(next.Pods) {
		aligned := true
		for i := range next.Pods {
			a, b := &last.Pods[i], &next.Pods[i]
			if a.Namespace != b.Namespace || a.Name != b.Name {
				aligned = false
				break
			}
			if !samePod(a, b) {
				out.refs[refOf(b)] = true
				out.last, out.next = append(out.last, i), append(out.next, i)
				if len(out.refs) > patchMaxPods {
					return nil, false
				}
			}
		}
		if aligned {
			return out, true
		}
		out = &podChanges{refs: map[podRef]bool{}}
	}
	before := make(map[podRef]int, len(last.Pods))
	for i := range last.Pods {
		before[refOf(&last.Pods[i])] = i
	}
	for i := range next.Pods {
		p := &next.Pods[i]
		key := refOf(p)
		was, found := before[key]
		switch {
		case !found:
			out.next = append(out.next, i)
			out.refs[key] = true
		case !samePod(&last.Pods[was], p):
			out.last, out.next = append(out.last, was), append(out.next, i)
			out.refs[key] = true
		}
		delete(before, key)
	}
	for key, i := range before {
		out.last = append(out.last, i)
		out.refs[key] = true
	}
	return out, len(out.refs) <= patchMaxPods
}

// changesLocal reports whether a changed pod is this node's in last or next.
func (ch *podChanges) changesLocal(last, next *Snapshot) bool {
	for _, i := range ch.last {
		if last.IsLocal(&last.Pods[i]) {
			return true
		}
	}
	for _, i := range ch.next {
		if next.IsLocal(&next.Pods[i]) {
			return true
		}
	}
	return false
}

// touched returns the addresses whose members a patch recomputes: those
// of the changed pods of other nodes (as last and next have them) and
// those of the records lists, each as written and in canonical form.
func (ch *podChanges) touched(last, next *Snapshot, lists ...[]Attachment) map[string]bool {
	touched := map[string]bool{}
	note := func(ip string) { touched[ip], touched[canonicalIP(ip)] = true, true }
	for _, list := range lists {
		for _, a := range list {
			for _, ip := range a.IPs {
				note(ip)
			}
		}
	}
	for k, s := range []*Snapshot{last, next} {
		for _, i := range [][]int{ch.last, ch.next}[k] {
			if p := &s.Pods[i]; !s.IsLocal(p) {
				for _, ip := range p.IPs {
					note(ip)
				}
			}
		}
	}
	return touched
}

// sharesAddress reports whether a pod of another node in next that did
// not change holds a touched address (in any spelling).
func (ch *podChanges) sharesAddress(next *Snapshot, touched map[string]bool) bool {
	if len(touched) == 0 {
		return false
	}
	var v4, v6 []string
	for ip := range touched {
		if strings.Contains(ip, ":") {
			v6 = append(v6, ip)
		} else {
			v4 = append(v4, ip)
		}
	}
	for i := range next.Pods {
		p := &next.Pods[i]
		for _, ip := range p.IPs {
			hit := false
			if strings.Contains(ip, ":") {
				// IPv6 has many spellings; a valid IPv4 address one.
				hit = len(v6) > 0 && (touched[ip] || touched[canonicalIP(ip)])
			} else {
				for _, t := range v4 {
					hit = hit || ip == t
				}
			}
			if hit && !next.IsLocal(p) && !ch.refs[refOf(p)] {
				return true
			}
		}
	}
	return false
}
