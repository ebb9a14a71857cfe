package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresCPU returns the CPU PostgreSQL has used: its postmaster's own
// and that of the children it has reaped (utime, stime, cutime, cstime),
// plus that of every child still running. Differences of two readings are
// the server's CPU in between, whichever backends came and went.
func (h *harness) postgresCPU(ctx context.Context) (time.Duration, error) {
	if h.postmaster == 0 {
		c, err := pgx.Connect(ctx, h.cfg.adminURL)
		if err != nil {
			return 0, fmt.Errorf("connect to find the postmaster: %w", err)
		}
		var backend int
		err = c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend)
		if err != nil {
			c.Close(ctx)
			return 0, err
		}
		// Read while connected: the backend exits with its connection.
		f, err := procStat(backend)
		c.Close(ctx)
		if err != nil {
			return 0, fmt.Errorf("PostgreSQL's processes are not readable here (is the server local?): %w", err)
		}
		h.postmaster, _ = strconv.Atoi(f[1])
	}
	f, err := procStat(h.postmaster)
	if err != nil {
		return 0, err
	}
	total := ticks(f, 11, 12, 13, 14)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if c, err := procStat(pid); err == nil && c[1] == strconv.Itoa(h.postmaster) {
			total += ticks(c, 11, 12)
		}
	}
	return total, nil
}

// procStat returns the fields of /proc/pid/stat after the command name:
// [0] state, [1] ppid, … [11] utime, [12] stime, [13] cutime, [14] cstime.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}

func ticks(f []string, idx ...int) time.Duration {
	var n int64
	for _, i := range idx {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return time.Duration(n) * time.Second / 100 // USER_HZ
}
