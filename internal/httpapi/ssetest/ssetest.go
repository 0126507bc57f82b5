// Package ssetest reads Server-Sent Events streams in tests, as the HTML
// standard's EventSource parses them: fields of lines up to a blank line,
// "data" lines joined, comments kept apart so that heartbeats can be seen.
package ssetest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/subscription"
)

// Message is one block of a stream, up to its blank line: an event (Data
// set), a comment (a heartbeat), or a retry hint.
type Message struct {
	ID, Event, Data string
	// HasID is true when the block had an id field (an empty one resets
	// the client's last event id).
	HasID bool
	// Retry is the retry field's value, if any.
	Retry string
	// Comments are the block's comment lines, without the colon.
	Comments []string
}

// Reader reads the messages of a stream.
type Reader struct {
	sc *bufio.Scanner
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &Reader{sc: sc}
}

// Next returns the next message; io.EOF when the stream ended between
// messages, io.ErrUnexpectedEOF when it ended inside one.
func (r *Reader) Next() (Message, error) {
	var (
		m     Message
		data  []string
		begun bool
	)
	for r.sc.Scan() {
		line := strings.TrimSuffix(r.sc.Text(), "\r")
		if line == "" {
			if !begun {
				continue
			}
			m.Data = strings.Join(data, "\n")
			return m, nil
		}
		begun = true
		if c, ok := strings.CutPrefix(line, ":"); ok {
			m.Comments = append(m.Comments, strings.TrimPrefix(c, " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.ID, m.HasID = value, true
		case "event":
			m.Event = value
		case "data":
			data = append(data, value)
		case "retry":
			m.Retry = value
		}
	}
	if err := r.sc.Err(); err != nil {
		return Message{}, err
	}
	if begun {
		return Message{}, io.ErrUnexpectedEOF
	}
	return Message{}, io.EOF
}

// Stream is an open stream a test reads.
type Stream struct {
	t    testing.TB
	Resp *http.Response
	*Reader
}

// Open sends req with client and returns the stream it answers, closed at
// the test's end; the test fails unless the answer is a 200
// text/event-stream.
func Open(t testing.TB, client *http.Client, req *http.Request) *Stream {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s %s", req.URL, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &Stream{t: t, Resp: resp, Reader: NewReader(resp.Body)}
	t.Cleanup(s.Close)
	return s
}

// Close ends the stream (the client disconnects).
func (s *Stream) Close() { s.Resp.Body.Close() }

// Wait bounds how long Must waits for a message.
const Wait = 10 * time.Second

// Must returns the next message; the test fails when the stream ends or
// Wait passes without one.
func (s *Stream) Must() Message {
	s.t.Helper()
	stuck := time.AfterFunc(Wait, s.Close)
	defer stuck.Stop()
	m, err := s.Next()
	if err != nil {
		s.t.Fatalf("stream: %v", err)
	}
	return m
}

// Events returns the next n events (messages with data), skipping
// heartbeats and hints.
func (s *Stream) Events(n int) []Message {
	s.t.Helper()
	var out []Message
	for len(out) < n {
		if m := s.Must(); m.Data != "" {
			out = append(out, m)
		}
	}
	return out
}

// Decode returns the data of events (messages of a live stream) and their
// positions; the test fails unless each is a subscription.Event whose
// position is the message's id and whose type is its name.
func Decode(t testing.TB, ms []Message) ([]subscription.Event, []int64) {
	t.Helper()
	events, positions := make([]subscription.Event, 0, len(ms)), make([]int64, 0, len(ms))
	for _, m := range ms {
		var e subscription.Event
		if err := json.Unmarshal([]byte(m.Data), &e); err != nil {
			t.Fatalf("event data %q: %v", m.Data, err)
		}
		if m.ID != strconv.FormatInt(e.Position, 10) || m.Event != e.Type || e.EntityID == "" {
			t.Errorf("event id %q, name %q, data %s: want the position as id, the type as name, an entity", m.ID, m.Event, m.Data)
		}
		events, positions = append(events, e), append(positions, e.Position)
	}
	return events, positions
}
