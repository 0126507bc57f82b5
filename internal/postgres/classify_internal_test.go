package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// A server that goes away mid-exchange is unavailability (a 503 with
// Retry-After), not an internal error; cancellations and other errors keep
// their own meaning.
func TestClassifyLostConnections(t *testing.T) {
	unavailable := []error{
		io.ErrUnexpectedEOF,
		fmt.Errorf("read: %w", io.EOF),
		&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET},
		net.ErrClosed,
	}
	for _, err := range unavailable {
		if got := classify(err); !errors.Is(got, eventstore.ErrUnavailable) {
			t.Errorf("classify(%v) = %v, want ErrUnavailable", err, got)
		}
	}
	for _, err := range []error{context.Canceled, context.DeadlineExceeded, errors.New("syntax error")} {
		if got := classify(err); errors.Is(got, eventstore.ErrUnavailable) {
			t.Errorf("classify(%v) = %v, want it left alone", err, got)
		}
	}
}
