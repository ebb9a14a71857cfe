package store

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"inbox/metrics"
)

// ConnectProblem names what kept a connection to the database from being
// made, so the error at start can say which setting to fix.
type ConnectProblem struct {
	// Class is a few words: "connection refused", "no such database",
	// "authentication failed", "host not found", "timed out", or
	// "unreachable" for anything else.
	Class string
	// Permanent is true when waiting cannot help: the URL names a database
	// that does not exist, or credentials the server refuses.
	Permanent bool
}

// DescribeConnectError classifies the error of a failed connection or ping.
func DescribeConnectError(err error) ConnectProblem {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pe.Code {
		case "3D000": // invalid_catalog_name
			return ConnectProblem{Class: "no such database", Permanent: true}
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return ConnectProblem{Class: "authentication failed", Permanent: true}
		}
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectProblem{Class: "connection refused"}
	case errors.As(err, &dnsErr):
		return ConnectProblem{Class: "host not found"}
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return ConnectProblem{Class: "timed out"}
	}
	return ConnectProblem{Class: "unreachable"}
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// PoolStat returns what the pool says of itself, for metrics.
func (s *Store) PoolStat() metrics.PoolStat {
	st := s.pool.Stat()
	return metrics.PoolStat{
		Acquired: st.AcquiredConns(), Idle: st.IdleConns(), Constructing: st.ConstructingConns(), Total: st.TotalConns(),
		Max: st.MaxConns(), Acquires: st.AcquireCount(), EmptyAcquires: st.EmptyAcquireCount(),
		CanceledAcquires: st.CanceledAcquireCount(), News: st.NewConnsCount(),
		AcquireDuration: st.AcquireDuration(), EmptyAcquireWait: st.EmptyAcquireWaitTime(),
	}
}
