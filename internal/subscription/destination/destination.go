// Package destination decides which webhook destination URLs a subscription
// may name, and gives the HTTP client that delivers to them. It refuses
// server-side request forgery twice: when a subscription is created (Check)
// and when a delivery connects (Transport), because a name that resolved to a
// public address at creation may resolve to an internal one later (DNS
// rebinding).
package destination

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrRefused is wrapped by every refusal (the HTTP layer maps it to 400).
var ErrRefused = errors.New("destination refused")

// MaxURLLength is the longest destination URL Check accepts, in bytes.
const MaxURLLength = 2048

// Resolver resolves host names (net.DefaultResolver satisfies it).
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Policy says what destinations are allowed. The zero Policy is the
// production one: https only, public addresses only, the system resolver.
type Policy struct {
	// AllowPrivate is the setting Subscriptions.AllowPrivateDestinations:
	// http as well as https, and no address is blocked (development, tests).
	AllowPrivate bool
	// Resolver resolves destination host names; nil means net.DefaultResolver.
	Resolver Resolver
}

// Check validates a destination when a subscription is created and returns
// it parsed. It requires an absolute https URL (http too when AllowPrivate)
// with a host, no user info, no fragment, at most MaxURLLength bytes, and a
// host that is a host name or a canonical IP address (not 0x7f000001,
// 2130706433 or 127.1). Unless AllowPrivate, it refuses localhost names and
// resolves the host: if any of its addresses is Blocked, the destination is
// refused and the error names the address and why.
//
// Every refusal wraps ErrRefused and never repeats the URL, whose path or
// query may carry a token. A resolver failure other than "no such host" is
// returned unwrapped: it says nothing about the URL.
func (p Policy) Check(ctx context.Context, raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, refusedf("the URL is longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL; keep only why it did not parse.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, refusedf("not a URL: %v", err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowPrivate:
	case u.Scheme == "http":
		return nil, refusedf("the scheme must be https, not http")
	case p.AllowPrivate:
		return nil, refusedf("the scheme must be http or https, not %q", u.Scheme)
	default:
		return nil, refusedf("the scheme must be https, not %q", u.Scheme)
	}
	if u.Opaque != "" || strings.TrimSuffix(u.Hostname(), ".") == "" {
		return nil, refusedf("the URL has no host")
	}
	if u.User != nil {
		return nil, refusedf("the URL has user info; put credentials elsewhere")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, refusedf("the URL has a fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, refusedf("port %q is not between 1 and 65535", port)
		}
	}
	host := strings.ToLower(u.Hostname())
	_, isIP, err := p.parseHost(host)
	switch {
	case err != nil:
		return nil, err
	case isIP:
		return u, nil
	case p.AllowPrivate:
		// Nothing is blocked: resolving could only fail on a DNS outage,
		// which the delivery reports anyway.
		return u, nil
	}
	if _, err := p.lookup(ctx, host); err != nil {
		return nil, err
	}
	return u, nil
}

// parseHost tells an IP literal (which it checks) from a host name. It
// refuses hosts ending in a number that are not a canonical IP address: URL
// parsers and inet_aton read 0x7f000001, 2130706433, 0177.0.0.1 and 127.1 as
// 127.0.0.1, and no top-level domain is numeric.
func (p Policy) parseHost(host string) (ip netip.Addr, isIP bool, err error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason, blocked := p.blocked(ip); blocked {
			return ip, true, refusedf("address %s is blocked: %s", ip, reason)
		}
		return ip, true, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "" {
		return netip.Addr{}, false, refusedf("the URL has no host")
	}
	if endsInNumber(name) {
		return netip.Addr{}, false, refusedf("host %q is neither a host name nor a canonical IP address", host)
	}
	if !p.AllowPrivate && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
		return netip.Addr{}, false, refusedf("host %q is blocked: loopback (localhost)", host)
	}
	return netip.Addr{}, false, nil
}

// endsInNumber is the WHATWG URL standard's test for a host to be parsed as
// an IPv4 address: its last label is decimal digits or 0x and hex digits.
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// lookup resolves a host name and refuses it when any of its addresses is
// blocked: a client may connect to any of them.
func (p Policy) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	resolver := p.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	answers, err := resolver.LookupIPAddr(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, refusedf("host %q does not exist", host)
		}
		return nil, fmt.Errorf("destination: resolve %q: %w", host, err)
	}
	if len(answers) == 0 {
		return nil, refusedf("host %q has no addresses", host)
	}
	addrs := make([]netip.Addr, 0, len(answers))
	for _, a := range answers {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return nil, refusedf("host %q resolves to %q, not an IP address", host, a.IP)
		}
		ip = ip.Unmap().WithZone(a.Zone)
		if reason, blocked := p.blocked(ip); blocked {
			return nil, refusedf("host %q resolves to %s, which is blocked: %s", host, ip, reason)
		}
		addrs = append(addrs, ip)
	}
	return addrs, nil
}

// blocked is Blocked under the policy: nothing is when AllowPrivate. A zone
// on anything but a blocked (link-local) address means nothing on the
// Internet, so it is refused too.
func (p Policy) blocked(ip netip.Addr) (reason string, blocked bool) {
	if p.AllowPrivate {
		return "", false
	}
	if reason, blocked := Blocked(ip); blocked {
		return reason, true
	}
	if ip.Zone() != "" {
		return "has an IPv6 zone", true
	}
	return "", false
}

func refusedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}
