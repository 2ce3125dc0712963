package policy

import (
	"testing"
	"time"
)

// A leftover record (a lost DEL) holds an address that host-local has since
// given to another pod: the address is the newer pod's only, and is neither
// isolated nor allowed as the old record's pod.
func TestContestedAddressBelongsToNewestRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const reusedByFe, reusedByClient = "10.244.1.99", "10.244.1.98"
	atts := append([]Attachment{
		// leftovers of db and fe, older than the pods now holding their addresses
		{ContainerID: "z-old-db", Namespace: "default", Name: "db", IPs: []string{reusedByFe}, Created: t0},
		{ContainerID: "z-old-fe", Namespace: "default", Name: "fe", IPs: []string{reusedByClient}},
		{ContainerID: "a-new-fe", Namespace: "default", Name: "fe", IPs: []string{reusedByFe}, Created: t0.Add(time.Minute)},
		{ContainerID: "a-new-client", Namespace: "default", Name: "client", IPs: []string{reusedByClient}, Created: t0},
	}, testAtts...)
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, seedPolicy)}
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	runProbes(t, c, []probe{
		{"to the new frontend (not isolated), not to db", tcp(client, reusedByFe, 80), true},
		{"the new frontend to db:6379", tcp(reusedByFe, db, 6379), true},
		{"the new client (not a frontend) to db:6379", tcp(reusedByClient, db, 6379), false},
	})
	for i, want := range [][]string{nil, nil, {reusedByFe}, {reusedByClient}} {
		got := OwnAddresses(atts)[i].IPs
		if len(got) != len(want) || (len(want) == 1 && got[0] != want[0]) {
			t.Errorf("%s: addresses %v, want %v", atts[i].ContainerID, got, want)
		}
	}
	if atts[0].IPs[0] != reusedByFe {
		t.Error("OwnAddresses modified its input")
	}
}
