package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netpol/netpol/policy/node"
)

// expectedFile holds what CNI CHECK compares with the kernel
// (node.Expected), written by the agent after each commit:
//
//	netpol-expected VERSION INDEX-SHA256
//	[{"family":4,"hooks":[...],"chains":[...]}, ...]
//
// The first line names the index it goes with (the SHA-256 of the index
// file's bytes); the rest is the families as JSON. Only CHECK reads it.
const expectedFile = "expected.json"

const expectedMagic = "netpol-expected"

// IndexSum is the SHA-256 (hex) of an encoded index, as Expected.Index
// names it.
func IndexSum(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return hex.EncodeToString(sum[:])
}

// EncodeExpectedFamilies is the body of the expected file: e's families as
// JSON, which the agent keeps and stores again, under a new first line,
// while the rules stay the same.
func EncodeExpectedFamilies(e *node.Expected) ([]byte, error) {
	return json.Marshal(e.Families)
}

// WriteExpected stores an expected file for the index whose IndexSum is
// index, with body (EncodeExpectedFamilies). It is not fsynced: after a
// crash it may be old or empty, and CHECK then fails on it (an old one
// names another index), never passes on it, until the agent's next commit
// writes it again.
func (s *Store) WriteExpected(index string, body []byte) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	head := fmt.Sprintf("%s %d %s\n", expectedMagic, node.ExpectedVersion, index)
	// Written without the data directory lock, like the snapshot: its temp
	// file is flocked until the rename, so RemoveTemps leaves it alone.
	return writeFile(filepath.Join(s.Dir, expectedFile), append([]byte(head), body...), 0o600, true, false)
}

// ExpectedNames reports whether the stored expected file is of this
// version and names the index whose IndexSum is index (false when it
// cannot tell). It reads the first line only.
func (s *Store) ExpectedNames(index string) bool {
	f, err := os.Open(filepath.Join(s.Dir, expectedFile))
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf("%s %d %s\n", expectedMagic, node.ExpectedVersion, index)
	got := make([]byte, len(want))
	_, err = io.ReadFull(f, got)
	return err == nil && string(got) == want
}

// ReadExpected loads the expected file (os.ErrNotExist when there is
// none: the agent has not committed a sync since it was installed or
// upgraded to a version that writes it). A file of another version is an
// error naming it.
func (s *Store) ReadExpected() (*node.Expected, error) {
	path := filepath.Join(s.Dir, expectedFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	head, body, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(head))
	if len(f) != 3 || f[0] != expectedMagic {
		return nil, fmt.Errorf("%s: line 1: want %q VERSION INDEX-SHA256, got %q", path, expectedMagic, head)
	}
	e := &node.Expected{Index: f[2]}
	if e.Version, err = strconv.Atoi(f[1]); err != nil || e.Version != node.ExpectedVersion {
		return nil, fmt.Errorf("%s: version %q, want %d", path, f[1], node.ExpectedVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e.Families); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// ReadIndexSummed is ReadIndexFor, also returning the IndexSum of the
// stored index (what CHECK compares with Expected.Index).
func (s *Store) ReadIndexSummed(podKey string) (*node.Index, string, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, indexFile))
	if err != nil {
		return nil, "", err
	}
	idx, err := DecodeIndex(data, podKey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", filepath.Join(s.Dir, indexFile), err)
	}
	return idx, IndexSum(data), nil
}
