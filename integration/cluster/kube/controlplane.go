package kube

import (
	"net"
	"path/filepath"
)

// startAPIServer issues the serving certificate (the node IP, the
// kubernetes Service's ClusterIP and names, loopback), the service account
// key pair and the API server's client certificate towards the kubelet,
// then starts kube-apiserver on NODEIP:6443 with etcd on the loopback.
func (c *Cluster) startAPIServer(serviceIP net.IP) error {
	ip := net.ParseIP(c.cfg.NodeIP)
	names := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "localhost"}
	crt, key, err := c.pki.issue("apiserver", "kube-apiserver", nil, names,
		[]net.IP{ip, serviceIP, net.ParseIP("127.0.0.1")})
	if err != nil {
		return err
	}
	kcrt, kkey, err := c.pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
		[]string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	saKey, saPub, err := writeServiceAccountKey(c.pki.dir)
	if err != nil {
		return err
	}
	args := []string{
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0",
		"--secure-port=6443",
		"--advertise-address=" + c.cfg.NodeIP,
		"--tls-cert-file=" + crt,
		"--tls-private-key-file=" + key,
		"--client-ca-file=" + c.pki.CertPath(),
		"--service-cluster-ip-range=" + c.cfg.ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate=" + kcrt,
		"--kubelet-client-key=" + kkey,
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true",
		"--cert-dir=" + filepath.Join(c.cfg.Dir, "apiserver-certs"),
		"--profiling=false",
		"--v=1",
	}
	return c.add(start("kube-apiserver", Namespaces{Net: c.cfg.NS.Net}, c.logDir,
		filepath.Join(c.cfg.Bin, "kube-apiserver"), args...))
}

// startControllers starts kube-controller-manager (every default
// controller: service accounts and their tokens, the kube-root-ca.crt
// config map every pod mounts, endpoint slices for kube-proxy, namespace
// deletion, garbage collection) and kube-scheduler, each with its own
// client certificate for the identity RBAC's bootstrap roles expect.
func (c *Cluster) startControllers() error {
	kcm, err := c.identity("controller-manager", "system:kube-controller-manager", nil)
	if err != nil {
		return err
	}
	sched, err := c.identity("scheduler", "system:kube-scheduler", nil)
	if err != nil {
		return err
	}
	pkiDir := c.pki.dir
	err = c.add(start("kube-controller-manager", Namespaces{Net: c.cfg.NS.Net}, c.logDir,
		filepath.Join(c.cfg.Bin, "kube-controller-manager"),
		"--kubeconfig="+kcm,
		"--authentication-kubeconfig="+kcm,
		"--authorization-kubeconfig="+kcm,
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--controllers=*",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+filepath.Join(pkiDir, "sa.key"),
		"--root-ca-file="+c.pki.CertPath(),
		"--cluster-signing-cert-file="+c.pki.CertPath(),
		"--cluster-signing-key-file="+filepath.Join(pkiDir, "ca.key"),
		"--service-cluster-ip-range="+c.cfg.ServiceCIDR,
		"--v=1"))
	if err != nil {
		return err
	}
	return c.add(start("kube-scheduler", Namespaces{Net: c.cfg.NS.Net}, c.logDir,
		filepath.Join(c.cfg.Bin, "kube-scheduler"),
		"--kubeconfig="+sched,
		"--authentication-kubeconfig="+sched,
		"--authorization-kubeconfig="+sched,
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--v=1"))
}

// identity issues a client certificate for user (groups orgs) and writes
// its kubeconfig, pki/NAME.kubeconfig.
func (c *Cluster) identity(name, user string, orgs []string) (string, error) {
	crt, key, err := c.pki.issue(name, user, orgs, nil, nil)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.pki.dir, name+".kubeconfig")
	return path, writeKubeconfig(path, c.Server, c.pki.CertPath(), crt, key)
}
