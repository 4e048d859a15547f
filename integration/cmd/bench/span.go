package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// measurement is one timed scenario: its wall time, the CPU time the client and MinIO spent in
// it, and the client's peak RSS (and, from the child runner, its peak Go heap) when it ran as its
// own process.
type measurement struct {
	wall      time.Duration
	clientCPU time.Duration
	serverCPU time.Duration
	maxRSSKiB int64
	heapPeak  int64 // bytes: the peak Go heap the child runner sampled (child.go); 0 otherwise
}

// span is a scenario being timed.
type span struct {
	start     time.Time
	serverPID int
	server    time.Duration
	self      time.Duration
}

// begin starts timing a scenario. It first writes back every dirty page (sync(2)), so that no
// scenario pays for the previous one's writes. (Waiting for MinIO's CPU to fall quiet as well was
// tried: MinIO keeps working in the background for over 30 s after large writes, and the wait
// changed none of the figures.)
func (b *bench) begin() span {
	syscall.Sync()
	s := span{serverPID: b.srv.Pid()}
	s.server, _ = procCPU(s.serverPID)
	s.self = selfCPU()
	s.start = time.Now()
	return s
}

// end finishes the scenario. The client is the child process when one ran (its rusage), and the
// benchmark process itself otherwise.
func (s span) end(child *os.ProcessState) measurement {
	m := measurement{wall: time.Since(s.start)}
	if server, err := procCPU(s.serverPID); err == nil {
		m.serverCPU = server - s.server
	}
	if child != nil {
		m.clientCPU = child.UserTime() + child.SystemTime()
	} else {
		m.clientCPU = selfCPU() - s.self
	}
	return m
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on every Linux ABI Go
// supports).
const userHZ = 100

// procCPU is the user+system CPU time a running process has used so far (all its threads).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
