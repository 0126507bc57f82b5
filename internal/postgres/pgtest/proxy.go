package pgtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a PostgreSQL server until it is severed:
// a test's way of losing the database connection in the middle of a reply.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[net.Conn]bool
	armed   bool
	budget  int // server bytes still let through once armed
	severed bool
	wg      sync.WaitGroup
}

// NewProxy starts a proxy in front of the server of dsn and returns it and
// dsn rewritten to go through it. It stops at the test's cleanup.
func NewProxy(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", redact(dsn), err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.SeverAfter(0)
		p.wg.Wait()
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

// SeverAfter lets at most n more bytes of the server's replies through, then
// closes every connection and refuses new ones.
func (p *Proxy) SeverAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.budget = true, n
	if n <= 0 {
		p.severLocked()
	}
}

func (p *Proxy) severLocked() {
	p.severed = true
	for c := range p.conns {
		c.Close()
	}
}

// track registers a connection; it reports false once severed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.severed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil || !p.track(server) {
			client.Close()
			continue
		}
		p.wg.Go(func() { io.Copy(server, client); server.Close() })
		p.wg.Go(func() { p.replies(client, server); client.Close() })
	}
}

// replies copies the server's bytes to the client within the budget.
func (p *Proxy) replies(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if p.armed {
				if n >= p.budget {
					n = max(p.budget, 0)
					p.budget = 0
					client.Write(buf[:n])
					p.severLocked()
					p.mu.Unlock()
					return
				}
				p.budget -= n
			}
			p.mu.Unlock()
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
