package runtime

import (
	"fmt"
	"strconv"
	"strings"
)

// config renders containerd's config.toml (version 4, containerd 2.4) for
// the runtime: every path under r.Dir, the CRI plugin on the given CNI
// conf dir and bin dirs, runc with cgroupfs, the sandbox image pinned, and
// no plugin that would write outside r.Dir (opt, NRI; CDI spec dirs
// moved into it).
func (r *Runtime) config() string {
	q := strconv.Quote
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("version = 4")
	w("root = %s", q(r.path("root")))
	w("state = %s", q(r.path("state")))
	// No drop-ins from the machine's /etc/containerd/conf.d.
	w("imports = []")
	w("disabled_plugins = [%s, %s]", q("io.containerd.nri.v1.nri"), q("io.containerd.internal.v1.tracing"))
	w("[plugins.'io.containerd.server.v1.grpc']\n  address = %s", q(r.Socket))
	w("[plugins.'io.containerd.server.v1.ttrpc']\n  address = %s", q(r.Socket+".ttrpc"))
	w("[debug]\n  level = %s", q(r.opts.LogLevel))
	w("[plugins.'io.containerd.internal.v1.opt']\n  path = %s", q(r.path("opt")))
	w("[plugins.'io.containerd.grpc.v1.cri']")
	w("  disable_tcp_service = true")
	w("  stream_server_address = %s", q("127.0.0.1"))
	w("  stream_server_port = %s", q("0"))
	w("[plugins.'io.containerd.cri.v1.images']")
	w("  snapshotter = %s", q(r.opts.Snapshotter))
	w("  [plugins.'io.containerd.cri.v1.images'.pinned_images]")
	w("    sandbox = %s", q(r.opts.SandboxImage))
	w("[plugins.'io.containerd.cri.v1.runtime']")
	// Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj
	// below the parent's, so containerd must clamp it.
	w("  restrict_oom_score_adj = true")
	w("  cdi_spec_dirs = [%s]", q(r.path("cdi")))
	w("  [plugins.'io.containerd.cri.v1.runtime'.cni]")
	w("    conf_dir = %s", q(r.ConfDir))
	w("    bin_dirs = [%s]", quoteAll(r.opts.CNIBinDirs))
	w("    max_conf_num = 1")
	w("  [plugins.'io.containerd.cri.v1.runtime'.containerd]")
	w("    default_runtime_name = %s", q("runc"))
	w("    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]")
	w("      runtime_type = %s", q("io.containerd.runc.v2"))
	w("      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]")
	w("        BinaryName = %s", q(r.runc))
	w("        Root = %s", q(r.path("runc")))
	w("        SystemdCgroup = false")
	return b.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
