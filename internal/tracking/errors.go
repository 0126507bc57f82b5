package tracking

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Sentinel errors of the domain. Adapters map them to transport statuses in one
// table: ErrInvalid → 400, ErrNotFound → 404, ErrRuleViolation → 422. Conflicts
// from the event store (eventstore.ErrWrongExpectedVersion,
// eventstore.ErrDuplicateEvent) are passed through wrapped with %w.
var (
	// ErrInvalid reports a malformed command or payload. The concrete error is
	// usually a *ValidationError listing every offending field.
	ErrInvalid = errors.New("invalid request")
	// ErrRuleViolation reports a well-formed command that breaks a domain
	// invariant (registered twice, completing an operation that was not
	// started, ...). The concrete error is a *ViolationError.
	ErrRuleViolation = errors.New("rule violation")
	// ErrNotFound reports that the entity does not exist in the tenant. It wraps
	// eventstore.ErrNotFound, so errors.Is holds for both.
	ErrNotFound = fmt.Errorf("entity %w", eventstore.ErrNotFound)
)

// maxFieldErrors bounds the number of field errors a ValidationError collects,
// so that a request of 1,000 bad events does not produce a huge answer.
const maxFieldErrors = 100

// FieldError is one problem of a request or payload.
type FieldError struct {
	// Field is a JSON-pointer-like path to the offending value, without the
	// leading slash, for example "events/0/data/lat". Empty means the whole
	// document.
	Field string `json:"field"`
	// Message says what is wrong, for a human.
	Message string `json:"message"`
}

// ValidationError is returned for malformed input. errors.Is(err, ErrInvalid)
// holds.
type ValidationError struct {
	// Errors lists the problems found, in document order, at most 100.
	Errors []FieldError
}

// Error joins the field errors into one line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, f := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if f.Field != "" {
			b.WriteString(f.Field)
			b.WriteString(": ")
		}
		b.WriteString(f.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// EventTooLargeError reports an event whose data is larger than the
// service takes (ServiceOptions.MaxEventBytes). errors.Is(err, ErrInvalid)
// holds: the command is refused as it is.
type EventTooLargeError struct {
	Event       int // the index of the event in the command
	Size, Limit int // its data's size and the limit, in bytes
}

func (e *EventTooLargeError) Error() string {
	return fmt.Sprintf("event %d: its data has %d bytes, more than the %d an event may have", e.Event, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *EventTooLargeError) Is(target error) bool { return target == ErrInvalid }

// ViolationError is returned when a command breaks a domain invariant.
// errors.Is(err, ErrRuleViolation) holds.
type ViolationError struct {
	// Event is the index of the offending event in the command, or -1 when the
	// violation is about the command as a whole.
	Event int
	// Message says which rule is broken, for a human.
	Message string
}

// Error describes the violation.
func (e *ViolationError) Error() string {
	if e.Event < 0 {
		return ErrRuleViolation.Error() + ": " + e.Message
	}
	return fmt.Sprintf("%s: events/%d: %s", ErrRuleViolation, e.Event, e.Message)
}

// Is makes errors.Is(err, ErrRuleViolation) true.
func (e *ViolationError) Is(target error) bool { return target == ErrRuleViolation }

// fieldErrors collects FieldErrors under a path prefix.
type fieldErrors struct {
	list []FieldError
}

func (f *fieldErrors) add(field, format string, args ...any) {
	if len(f.list) >= maxFieldErrors {
		return
	}
	f.list = append(f.list, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f *fieldErrors) err() error {
	if len(f.list) == 0 {
		return nil
	}
	return &ValidationError{Errors: f.list}
}

// joinPath joins JSON-pointer-like path segments, skipping empty ones.
func joinPath(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(p)
	}
	return b.String()
}

// pointerToken escapes a key for use as one JSON pointer segment (RFC 6901).
func pointerToken(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
