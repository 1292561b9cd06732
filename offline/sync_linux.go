package offline

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (and the size, when it grew) without the
// inode timestamps, as bbolt does on Linux.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}
