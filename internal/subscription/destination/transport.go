package destination

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Bounds of a delivery connection; the Client's timeout bounds the whole
// exchange.
const (
	dialTimeout            = 10 * time.Second
	tlsHandshakeTimeout    = 10 * time.Second
	maxResponseHeaderBytes = 64 << 10
)

// Transport returns an http.RoundTripper for deliveries that enforces the
// policy when it connects, whatever Check said at creation: it resolves the
// host with p.Resolver, refuses the host if any address is blocked, dials
// the checked addresses itself, and checks the address again in
// net.Dialer.Control just before the socket connects. It uses no proxy from
// the environment (a proxy would connect on its behalf, past every check),
// and bounds dialing, the TLS handshake and the response headers.
func (p Policy) Transport() *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: p.control}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            p.dialContext(dialer),
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// Each subscription has at most one request in flight; many may
		// share an endpoint's host (a partner with several subscriptions),
		// and each keeps its connection rather than opening one per request.
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Client returns an HTTP client on Transport with the given overall timeout
// that never follows redirects: a 3xx comes back as the response, since a
// redirect could point anywhere, and a webhook that moved should be
// re-registered.
func (p Policy) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: p.Transport(),
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (p Policy) dialContext(dialer *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, refusedf("cannot check %q: %v", addr, err)
		}
		ip, isIP, err := p.parseHost(host)
		if err != nil {
			return nil, err
		}
		addrs := []netip.Addr{ip}
		if !isIP {
			if addrs, err = p.lookup(ctx, host); err != nil {
				return nil, err
			}
		}
		var errs []error
		for _, ip := range addrs {
			conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
}

// control is net.Dialer.Control: the last check, on the address the socket
// is about to connect to.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	if p.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refusedf("cannot check the address %q: %v", address, err)
	}
	if reason, blocked := p.blocked(ap.Addr()); blocked {
		return refusedf("address %s is blocked: %s", ap.Addr(), reason)
	}
	return nil
}
