package source

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fullCheckEvery is how often a watched DirSource still compares the
// fingerprint of every file: inotify does not see a file changed through
// a symbolic link that leads out of the directory.
const fullCheckEvery = time.Second

// dirEvents are the inotify events that mean the directory's manifests
// may have changed: a file written and closed, renamed in or out,
// deleted, its attributes changed (touch), or the directory itself gone.
// A file being written (IN_MODIFY) or just created (IN_CREATE) is left
// for its close, so that a half-written file is not loaded.
const dirEvents = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE |
	unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// dirWatch is an inotify watch of a manifest directory. Equivalent to:
// inotifywait -m -e close_write,moved_to,moved_from,delete,attrib DIR.
type dirWatch struct {
	fd     int
	file   *os.File
	dirty  atomic.Bool // an event arrived since the last clear
	broken atomic.Bool // the watch ended (directory gone or moved, read error)
	notify chan struct{}
	done   sync.WaitGroup
}

// watchDir starts watching dir, signalling notify (capacity 1) at every
// event; nil when inotify is not available or dir cannot be watched (the
// caller then compares fingerprints on every poll, as without it).
func watchDir(dir string, notify chan struct{}) *dirWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	if _, err := unix.InotifyAddWatch(fd, dir, dirEvents); err != nil {
		unix.Close(fd)
		return nil
	}
	w := &dirWatch{fd: fd, file: os.NewFile(uintptr(fd), "inotify "+dir), notify: notify}
	w.done.Add(1)
	go w.read()
	return w
}

// read marks the watch dirty and signals notify at every event, until the
// watch ends or is closed.
func (w *dirWatch) read() {
	defer w.done.Done()
	buf := make([]byte, 64*1024)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			w.broken.Store(true)
			w.signal()
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			size := binary.NativeEndian.Uint32(buf[off+12:])
			if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
				w.broken.Store(true)
			}
			off += unix.SizeofInotifyEvent + int(size)
		}
		w.signal()
	}
}

func (w *dirWatch) signal() {
	w.dirty.Store(true)
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// pending reports whether an event arrived since the last clear, counting
// one the kernel has queued and read has not taken yet.
func (w *dirWatch) pending() bool {
	if w.dirty.Load() {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}

// close stops the watch.
func (w *dirWatch) close() {
	_ = w.file.Close()
	w.done.Wait()
}
