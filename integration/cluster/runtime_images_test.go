package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/image"
	"github.com/netpol/netpol/integration/cluster/runtime"
	"github.com/netpol/netpol/integration/node"
)

// TestRuntimeRunsImages: the images built here without a registry run
// under containerd as a kubelet would run them. agnhost (under the name
// the upstream e2e suite uses) serves HTTP in a pod that the node reaches;
// the netpol image runs both iptables backends, ipset and the plugin, each
// found through the image's PATH, with the capabilities the DaemonSet
// gives the agent, and each exits 0 with its version.
func TestRuntimeRunsImages(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{})
	e.importImage(t, "agnhost")
	e.importImage(t, "netpol")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	web := e.runPod(t, "images", "agnhost", nil)
	if _, err := e.rt.RunContainer(ctx, web, runtime.ContainerSpec{
		Name: "netexec", Image: image.AgnhostRef, Args: []string{"netexec", "--http-port=8080"},
	}); err != nil {
		t.Fatal(err)
	}
	if status, err := httpStatus(e.node, web.IP, 8080, 60*time.Second); err != nil || !strings.HasSuffix(status, " 200 OK") {
		t.Errorf("agnhost netexec at %s:8080: status %q, %v; want 200 OK", web.IP, status, err)
	}

	tools := e.runPod(t, "images", "netpol", nil)
	for i, c := range []struct {
		cmd  []string
		env  []string
		want string
	}{
		{cmd: []string{"iptables-nft", "--version"}, want: "(nf_tables)"},
		{cmd: []string{"iptables-legacy", "--version"}, want: "(legacy)"},
		{cmd: []string{"ip6tables", "--version"}, want: "(nf_tables)"},
		{cmd: []string{"ipset", "--version"}, want: "ipset v"},
		{cmd: []string{"netpol"}, env: []string{"CNI_COMMAND=VERSION"}, want: `"supportedVersions"`},
	} {
		id, err := e.rt.RunContainer(ctx, tools, runtime.ContainerSpec{
			Name: fmt.Sprintf("check-%d", i), Image: image.NetpolRef, Command: c.cmd, Env: c.env,
			Capabilities: []string{"NET_ADMIN", "NET_RAW"}, // the DaemonSet's agent has these
		})
		if err != nil {
			t.Errorf("%v: %v", c.cmd, err)
			continue
		}
		code, err := waitExited(ctx, e.rt, id, time.Minute)
		logs, _ := e.rt.Crictl(ctx, "logs", id)
		if err != nil || code != 0 || !strings.Contains(string(logs), c.want) {
			t.Errorf("%v in netpol:latest: exit %d (%v), output %q; want exit 0 and %q", c.cmd, code, err, logs, c.want)
		}
	}
}

// waitExited polls a container until it has exited (at most timeout) and
// returns its exit code.
func waitExited(ctx context.Context, rt *runtime.Runtime, id string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for i := 0; i < 600; i++ {
		state, code, err := rt.ContainerState(ctx, id)
		if err != nil {
			return 0, err
		}
		if state == "CONTAINER_EXITED" {
			return code, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("container %s still %s after %v", id, state, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("container %s did not exit", id)
}

// httpStatus sends GET / from the node to ip:port and returns the status
// line, retrying until the server answers (at most timeout).
func httpStatus(from node.Host, ip string, port int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		conn, err := node.Dial(from, ip, "tcp", port, 2*time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", ip)
			if err == nil {
				var line string
				line, err = bufio.NewReader(conn).ReadString('\n')
				conn.Close()
				if err == nil {
					return strings.TrimSpace(line), nil
				}
			} else {
				conn.Close()
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return "", last
}
