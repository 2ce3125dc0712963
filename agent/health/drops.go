package health

// DropObserver hears of every drop record the agent writes and of the
// NFLOG messages it lost (metrics).
type DropObserver interface {
	// ObserveDrop counts one drop record: the direction, the reason code
	// (policy.ReasonNoPolicy, ReasonUnknown) and the namespace of the pod
	// whose policy dropped it ("" when the address is no known pod's).
	ObserveDrop(direction, reason, namespace string)
	// ObserveLost counts NFLOG messages the kernel could not deliver.
	ObserveLost(messages uint64)
}
