package nflog

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// inNetns creates a throwaway named network namespace and runs fn on a
// thread inside it; the namespace is deleted when the test ends.
func inNetns(t *testing.T, fn func(name string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	name := "nflog-test-" + hex.EncodeToString(buf)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	fn(name)
}

// TestKernelReadsGroup logs UDP datagrams sent inside a namespace with an
// NFLOG rule and reads them back: prefix, addresses, ports, consecutive
// sequence numbers, nothing lost; a second reader of the group is refused.
func TestKernelReadsGroup(t *testing.T) {
	inNetns(t, func(name string) {
		if out, err := exec.Command("ip", "netns", "exec", name, "sh", "-c",
			"ip link set lo up && iptables -A OUTPUT -p udp --dport 9 -j NFLOG --nflog-group 77 --nflog-prefix netpol-test").CombinedOutput(); err != nil {
			t.Fatalf("setup: %v: %s", err, out)
		}
		c, err := Open(77, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c2, err := Open(77, 0); err == nil {
			c2.Close()
			t.Error("a second socket bound the same group")
		}
		sink, err := net.ListenPacket("udp", "127.0.0.1:9") // no ICMP error cuts the writes short
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		conn, err := net.Dial("udp", "127.0.0.1:9")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const n = 5
		for range n {
			_, _ = conn.Write([]byte("x"))
		}
		local := conn.LocalAddr().(*net.UDPAddr)
		var got []Packet
		_ = c.f.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(got) < n {
			if err := c.Read(func(p Packet) { got = append(got, p) }); err != nil {
				t.Fatalf("after %d packets: %v", len(got), err)
			}
		}
		for i, p := range got {
			f, err := Decode(p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if p.Prefix != "netpol-test" || f.Protocol != "UDP" || f.Dst.String() != "127.0.0.1" || f.DstPort != 9 ||
				int(f.SrcPort) != local.Port || p.Bridged || (i > 0 && p.Seq != got[i-1].Seq+1) {
				t.Errorf("packet %d: %+v %+v", i, p, f)
			}
		}
		if lost, overruns := c.Lost(); lost != 0 || overruns != 0 {
			t.Errorf("lost %d, overruns %d; want none", lost, overruns)
		}
	})
}
