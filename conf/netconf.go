// Package conf parses and validates the configuration netpol is given: the
// plugin's network config (stdin of a CNI call) and the pod identity the
// runtime passes in CNI_ARGS. Every error names the offending field and value.
// The package imports no other netpol package and never logs.
package conf

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// PluginType is the only accepted value of the "type" field.
const PluginType = "netpol"

// DefaultDataDir is where the snapshot and per-pod state live when the
// config does not say.
const DefaultDataDir = "/var/lib/netpol"

// LogFileName is the log file's name inside dataDir when "logFile" is unset.
const LogFileName = "netpol.log"

// LogStderr is the "logFile" value that means: log to stderr.
const LogStderr = "-"

// IPTablesMode values of the "iptablesMode" field.
const (
	IPTablesAuto   = "auto"
	IPTablesNFT    = "nft"
	IPTablesLegacy = "legacy"
)

// supportedVersions are the CNI spec versions the plugin accepts.
var supportedVersions = []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// iptablesModes are the accepted "iptablesMode" values, default first.
var iptablesModes = []string{IPTablesAuto, IPTablesNFT, IPTablesLegacy}

// NetConf is the plugin's network configuration. The embedded types.NetConf
// carries cniVersion, name, type and the raw prevResult.
type NetConf struct {
	types.NetConf

	// DataDir holds the snapshot and per-pod state; absolute and clean.
	DataDir string `json:"dataDir"`
	// IPTablesMode selects the iptables backend: auto, nft or legacy.
	IPTablesMode string `json:"iptablesMode"`
	// LogFile is where the plugin logs; "-" means stderr.
	LogFile string `json:"logFile"`
	// DropLog is how the rules the plugin installs before the agent's first
	// sync log the packets they drop; a field left out keeps its default.
	// The agent's own flags decide from its first sync on.
	DropLog DropLog `json:"dropLog"`

	// PrevResult is the previous plugin's result converted to the current
	// result version; nil when the config carried none.
	PrevResult *types100.Result `json:"-"`
}

// SupportedVersions returns the CNI spec versions Parse accepts.
func SupportedVersions() []string { return slices.Clone(supportedVersions) }

// Parse decodes and validates the plugin config read from stdin, applies the
// defaults and, when present, parses prevResult. With requirePrevResult a
// missing prevResult is an error (ADD and CHECK after a main plugin).
func Parse(stdin []byte, requirePrevResult bool) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, decodeError(err)
	}
	if err := conf.validate(); err != nil {
		return nil, err
	}
	if err := conf.parsePrevResult(requirePrevResult); err != nil {
		return nil, err
	}
	return conf, nil
}

// decodeError turns a JSON decoding error into one that names the field when
// the decoder knows it.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Errorf("netpol config: field %q: cannot use JSON %s as %s: %w",
			typeErr.Field, typeErr.Value, typeErr.Type, err)
	}
	return fmt.Errorf("netpol config: invalid JSON: %w", err)
}

// validate checks every field and fills in the defaults.
func (c *NetConf) validate() error {
	if !slices.Contains(supportedVersions, c.CNIVersion) {
		return fieldError("cniVersion", c.CNIVersion,
			"is not one of "+strings.Join(supportedVersions, ", "))
	}
	if c.Type != PluginType {
		return fieldError("type", c.Type, fmt.Sprintf("is not %q", PluginType))
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if !filepath.IsAbs(c.DataDir) || filepath.Clean(c.DataDir) != c.DataDir {
		return fieldError("dataDir", c.DataDir, "is not an absolute, clean path")
	}
	if c.IPTablesMode == "" {
		c.IPTablesMode = IPTablesAuto
	}
	if !slices.Contains(iptablesModes, c.IPTablesMode) {
		return fieldError("iptablesMode", c.IPTablesMode,
			"is not one of "+strings.Join(iptablesModes, ", "))
	}
	if c.LogFile == "" {
		c.LogFile = filepath.Join(c.DataDir, LogFileName)
	}
	if c.LogFile != LogStderr && !filepath.IsAbs(c.LogFile) {
		return fieldError("logFile", c.LogFile, `is neither an absolute path nor "-"`)
	}
	return c.DropLog.validate()
}

// DropLog is the "dropLog" field: {"group": G, "rate": R, "burst": B}, the
// NFLOG group that dropped packets are copied to and how many a second
// (0: none) and at once each drop rule logs. nil fields keep the defaults
// (policy.DefaultDropLog()).
type DropLog struct {
	Group *uint16 `json:"group,omitempty"`
	Rate  *int    `json:"rate,omitempty"`
	Burst *int    `json:"burst,omitempty"`
}

// maxLimit is the highest rate and burst the kernel's limit match accepts.
const maxLimit = 10000

func (d DropLog) validate() error {
	if d.Rate != nil && (*d.Rate < 0 || *d.Rate > maxLimit) {
		return fieldError("dropLog.rate", strconv.Itoa(*d.Rate), fmt.Sprintf("is not 0 (off) to %d per second", maxLimit))
	}
	if d.Burst != nil && (*d.Burst < 1 || *d.Burst > maxLimit) {
		return fieldError("dropLog.burst", strconv.Itoa(*d.Burst), fmt.Sprintf("is not 1 to %d", maxLimit))
	}
	return nil
}

// parsePrevResult parses the raw prevResult, as the config's cniVersion says,
// and converts it to the current result version. An IP entry without an
// address is an error (the pod's address would be unknown, and so missing
// from every set that restricts it), and so is a route without a
// destination (the result passed on would not parse).
func (c *NetConf) parsePrevResult(required bool) error {
	if c.RawPrevResult == nil {
		if required {
			return errors.New(`netpol config: field "prevResult": is missing`)
		}
		return nil
	}
	if err := version.ParsePrevResult(&c.NetConf); err != nil {
		return fmt.Errorf("netpol config: field \"prevResult\": %w", err)
	}
	result, err := types100.NewResultFromResult(c.NetConf.PrevResult)
	if err != nil {
		return fmt.Errorf("netpol config: field \"prevResult\": cannot convert from version %s: %w",
			c.CNIVersion, err)
	}
	for i, ipc := range result.IPs {
		if ipc == nil || ipc.Address.IP == nil || ipc.Address.Mask == nil {
			return fmt.Errorf("netpol config: field \"prevResult.ips[%d].address\": is missing", i)
		}
	}
	for i, r := range result.Routes {
		if r == nil || r.Dst.IP == nil || r.Dst.Mask == nil {
			return fmt.Errorf("netpol config: field \"prevResult.routes[%d].dst\": is missing", i)
		}
	}
	c.PrevResult = result
	return nil
}

// fieldError formats the standard error for a bad field value.
func fieldError(field, value, problem string) error {
	return fmt.Errorf("netpol config: field %q: %q %s", field, value, problem)
}
