package destination

import (
	"fmt"
	"net/netip"
)

// blockedRange is a range of addresses that may never be a destination.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

// blockedRanges is read-only. The first range containing an address names
// it, so the narrow ranges (metadata, broadcast) come before the ranges that
// contain them. Mostly IANA's special-purpose registries, where "Globally
// Reachable" is false, plus the cloud metadata endpoints.
var blockedRanges = []blockedRange{
	// Cloud instance metadata, reachable from the instance only and full of
	// credentials.
	{netip.MustParsePrefix("169.254.169.254/32"), "metadata"}, // AWS, GCP, Azure, OCI, DigitalOcean…
	{netip.MustParsePrefix("100.100.100.200/32"), "metadata"}, // Alibaba Cloud
	{netip.MustParsePrefix("168.63.129.16/32"), "metadata"},   // Azure WireServer (a public address, reachable from every Azure VM)
	{netip.MustParsePrefix("fd00:ec2::254/128"), "metadata"},  // AWS IPv6

	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast (deprecated)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},

	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking"},
	{netip.MustParsePrefix("2001:10::/28"), "ORCHID (deprecated)"},
	{netip.MustParsePrefix("2001:20::/28"), "ORCHIDv2"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing (SRv6) SIDs"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// embedding is an IPv6 range whose addresses carry IPv4 addresses that a
// translator or tunnel relay will connect to.
type embedding struct {
	prefix netip.Prefix
	name   string
	// ipv4 extracts the embedded addresses.
	ipv4 func(a [16]byte) []netip.Addr
	// deprecated ranges are refused even when what they embed is public.
	deprecated bool
}

// embeddings is read-only. IPv4-mapped addresses (::ffff:0:0/96) are not
// here: they are IPv4 addresses, and Blocked unmaps them first.
var embeddings = []embedding{
	{prefix: netip.MustParsePrefix("::/96"), name: "IPv4-compatible", ipv4: last32, deprecated: true},
	{prefix: netip.MustParsePrefix("64:ff9b::/96"), name: "NAT64", ipv4: last32},
	{prefix: netip.MustParsePrefix("2002::/16"), name: "6to4", ipv4: func(a [16]byte) []netip.Addr {
		return []netip.Addr{netip.AddrFrom4([4]byte(a[2:6]))}
	}},
	// Teredo: 2001:0:<server IPv4>:<flags>:<port>:<client IPv4 XOR ffff:ffff>.
	{prefix: netip.MustParsePrefix("2001::/32"), name: "Teredo", ipv4: func(a [16]byte) []netip.Addr {
		client := [4]byte{^a[12], ^a[13], ^a[14], ^a[15]}
		return []netip.Addr{netip.AddrFrom4(client), netip.AddrFrom4([4]byte(a[4:8]))}
	}},
}

func last32(a [16]byte) []netip.Addr { return []netip.Addr{netip.AddrFrom4([4]byte(a[12:16]))} }

// globalUnicast is the IPv6 range IANA allocates from; nothing outside it
// (other than the translations above) is a public host.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// Blocked reports whether an address may never be a destination, and why
// (for example "loopback", "private", "metadata"). An IPv6 address embedding
// an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is
// blocked when the embedded address is, and the reason names both.
func Blocked(ip netip.Addr) (reason string, blocked bool) {
	if !ip.IsValid() {
		return "not an IP address", true
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		v4 := ip.Unmap()
		if reason, blocked := lookup(v4); blocked {
			return fmt.Sprintf("IPv4-mapped %s (%s)", v4, reason), true
		}
		return "", false
	}
	if reason, blocked := lookup(ip); blocked {
		return reason, true
	}
	if ip.Is4() {
		return "", false
	}
	for _, e := range embeddings {
		if !e.prefix.Contains(ip) {
			continue
		}
		for _, v4 := range e.ipv4(ip.As16()) {
			if reason, blocked := lookup(v4); blocked {
				return fmt.Sprintf("%s %s (%s)", e.name, v4, reason), true
			}
		}
		if e.deprecated {
			return e.name + " (deprecated)", true
		}
		return "", false
	}
	if !globalUnicast.Contains(ip) {
		return "reserved (outside IPv6 global unicast)", true
	}
	return "", false
}

func lookup(ip netip.Addr) (reason string, blocked bool) {
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return r.reason, true
		}
	}
	return "", false
}
