package state

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// RecordsStamp is a fingerprint of the pod records as files: the pods/
// directory's own inode, modification and change times, then every name in
// it with its inode, size and modification time. Records are replaced by
// rename, so a record written again has a new inode: two equal stamps mean
// no record was added, removed or rewritten between them, and the records
// need not be read again. The directory's times move with every name
// created, renamed or removed in it, so a record added and removed again
// between two stamps (an ADD and its DEL, while a drift check reads the
// kernel back) changes the stamp too, though the names end as they began;
// only when both happen within one tick of the file system's clock of the
// change before them may they go unseen. It costs two directory stats, one
// directory read and a stat per record, no decoding.
func (s *Store) RecordsStamp() ([32]byte, error) {
	dir := filepath.Join(s.Dir, podsDir)
	var ds syscall.Stat_t
	if err := syscall.Stat(dir, &ds); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return sha256.Sum256(nil), nil
		}
		return [32]byte{}, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return sha256.Sum256(nil), nil
	}
	if err != nil {
		return [32]byte{}, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d.%d\x00%d.%d\x00", ds.Ino, ds.Mtim.Sec, ds.Mtim.Nsec, ds.Ctim.Sec, ds.Ctim.Nsec)
	for _, n := range names {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, n), &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue // removed since listed: the names say so
			}
			return [32]byte{}, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d.%d\x00", n, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
