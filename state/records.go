package state

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/netpol/netpol/policy/node"
)

// idPattern is what the CNI spec allows in a container ID; interface names
// are checked against the same characters. Anything else never becomes a
// file name.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// recordSep separates the container ID from the interface name in a
// record's file name. idPattern admits it in neither, so the name is
// injective: (a_b, c) and (a, b_c) get different files.
const recordSep = "@"

// legacySep is the separator of records written before recordSep: "_",
// which both parts may contain. Such records are still read (see
// ReadAttachment), and replaced by the new name when ADD runs again.
const legacySep = "_"

// CheckIDs reports whether an attachment's container ID and interface name
// can name its record; the error names the one that cannot.
func CheckIDs(containerID, ifName string) error {
	if !idPattern.MatchString(containerID) || len(containerID) > 256 {
		return fmt.Errorf("container ID %q: not alphanumeric with _ . -", containerID)
	}
	if !idPattern.MatchString(ifName) || len(ifName) > 15 {
		return fmt.Errorf("interface name %q: invalid", ifName)
	}
	return nil
}

// recordName is the file of attachment (containerID, ifName) in podsDir.
func recordName(containerID, ifName string) (string, error) {
	if err := CheckIDs(containerID, ifName); err != nil {
		return "", err
	}
	return containerID + recordSep + ifName + ".json", nil
}

// legacyRecordName is the file an older netpol used for the attachment.
func legacyRecordName(containerID, ifName string) string {
	return containerID + legacySep + ifName + ".json"
}

// WriteAttachment records an attachment. A record of the same attachment
// under its legacy name is removed, so it is not listed twice.
func (s *Store) WriteAttachment(a *node.Attachment) error {
	name, err := recordName(a.ContainerID, a.IfName)
	if err != nil {
		return err
	}
	if err := s.writeRecord(name, a); err != nil {
		return err
	}
	return s.removeLegacy(a.ContainerID, a.IfName)
}

// ReadAttachment loads one record (os.ErrNotExist if there is none). A
// record under the legacy name counts only if it is this attachment's: the
// legacy name of (a_b, c) is also that of (a, b_c). An unusable record is
// moved aside and returned as a Quarantined error (which matches
// os.ErrNotExist).
func (s *Store) ReadAttachment(containerID, ifName string) (*node.Attachment, error) {
	name, err := recordName(containerID, ifName)
	if err != nil {
		return nil, err
	}
	a, err := s.readRecord(name)
	if q := (Quarantined{}); errors.Is(err, os.ErrNotExist) && !errors.As(err, &q) {
		a, err = s.readLegacy(containerID, ifName)
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// readLegacy loads the record under the legacy name if it is this
// attachment's.
func (s *Store) readLegacy(containerID, ifName string) (node.Attachment, error) {
	var a node.Attachment
	legacy := legacyRecordName(containerID, ifName)
	if err := s.readJSON(filepath.Join(podsDir, legacy), &a); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return a, err
		}
		return s.readRecord(legacy) // unusable: quarantined
	}
	if a.ContainerID != containerID || a.IfName != ifName {
		return node.Attachment{}, fmt.Errorf("container %s interface %s: %w", containerID, ifName, os.ErrNotExist)
	}
	return s.readRecord(legacy)
}

// RemoveAttachment deletes one record, under either name; a missing one is
// not an error (DEL is idempotent).
func (s *Store) RemoveAttachment(containerID, ifName string) error {
	name, err := recordName(containerID, ifName)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.Dir, podsDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return s.removeLegacy(containerID, ifName)
}

// removeLegacy deletes the record under the legacy name if it is this
// attachment's (and not that of another one sharing the name).
func (s *Store) removeLegacy(containerID, ifName string) error {
	rel := filepath.Join(podsDir, legacyRecordName(containerID, ifName))
	var a node.Attachment
	if err := s.readJSON(rel, &a); err != nil || a.ContainerID != containerID || a.IfName != ifName {
		return nil // none, another attachment's, or unreadable: not this one's to remove
	}
	if err := os.Remove(filepath.Join(s.Dir, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Quarantined is a pod record that could not be used (not JSON, or not a
// valid record of the attachment its file name says), moved aside to
// dataDir/quarantine/ so that one bad file does not stop every sync, ADD,
// DEL and CHECK of the node. Nothing is known of it, not even its pod's
// addresses: the caller logs it, and the attachment is treated as never
// recorded. As an error it matches os.ErrNotExist (the record is gone).
type Quarantined struct {
	File string // its name in pods/ (and now in quarantine/)
	Err  error  // why it was unusable; also why it could not be moved, if so
}

func (q Quarantined) Error() string {
	return fmt.Sprintf("pod record %s unusable, moved to %s/: %v", q.File, quarantineDir, q.Err)
}

// Unwrap makes a Quarantined match os.ErrNotExist and its cause.
func (q Quarantined) Unwrap() []error { return []error{os.ErrNotExist, q.Err} }

// readRecord loads the record in file (a name in pods/). An unusable one
// is moved to quarantine/ and returned as a Quarantined error.
func (s *Store) readRecord(file string) (node.Attachment, error) {
	var a node.Attachment
	err := s.readJSON(filepath.Join(podsDir, file), &a)
	if errors.Is(err, os.ErrNotExist) {
		return a, err
	}
	if err == nil {
		err = checkRecord(file, &a)
	}
	if err == nil {
		return a, nil
	}
	q := Quarantined{File: file, Err: err}
	if merr := s.quarantine(file); merr != nil {
		q.Err = errors.Join(err, merr)
	}
	return node.Attachment{}, q
}

// checkRecord verifies that a decoded record is the attachment its file is
// named after, with addresses that parse.
func checkRecord(file string, a *node.Attachment) error {
	name, err := recordName(a.ContainerID, a.IfName)
	if err != nil {
		return err
	}
	if file != name && file != legacyRecordName(a.ContainerID, a.IfName) {
		return fmt.Errorf("holds container %q interface %q, not the attachment its name says", a.ContainerID, a.IfName)
	}
	for i, ip := range a.IPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("ips[%d] %q: not an IP address", i, ip)
		}
	}
	return nil
}

// quarantine moves pods/file to quarantine/file.
func (s *Store) quarantine(file string) error {
	dir := filepath.Join(s.Dir, quarantineDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Rename(filepath.Join(s.Dir, podsDir, file), filepath.Join(dir, file))
}

// Attachments loads every record, sorted by container ID and interface,
// and moves every unusable one aside (see Quarantined), returning those
// separately. An attachment recorded under both its name and its legacy
// name (an upgrade interrupted between the two) is listed once, from its
// name.
func (s *Store) Attachments() ([]node.Attachment, []Quarantined, error) {
	entries, err := os.ReadDir(filepath.Join(s.Dir, podsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	byID := map[[2]string]node.Attachment{}
	current := map[[2]string]bool{} // read from its (non-legacy) name
	var bad []Quarantined
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") {
			continue
		}
		a, err := s.readRecord(n)
		var q Quarantined
		switch {
		case errors.As(err, &q):
			bad = append(bad, q)
			continue
		case errors.Is(err, os.ErrNotExist): // removed since listed (a reader without the lock)
			continue
		}
		id := [2]string{a.ContainerID, a.IfName}
		isCurrent := strings.Contains(n, recordSep)
		if current[id] && !isCurrent {
			continue
		}
		byID[id], current[id] = a, isCurrent
	}
	var out []node.Attachment
	for _, a := range byID {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerID != out[j].ContainerID {
			return out[i].ContainerID < out[j].ContainerID
		}
		return out[i].IfName < out[j].IfName
	})
	return out, bad, nil
}
