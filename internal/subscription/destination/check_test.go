package destination_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tlm/tracktrace/internal/subscription/destination"
)

// resolverFunc is a fake destination.Resolver: tests never touch the network.
type resolverFunc func(ctx context.Context, host string) ([]net.IPAddr, error)

func (f resolverFunc) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return f(ctx, host)
}

// zone maps host names to addresses; any other name does not exist.
func zone(t *testing.T, names map[string][]string) resolverFunc {
	t.Helper()
	answers := make(map[string][]net.IPAddr, len(names))
	for name, addrs := range names {
		for _, a := range addrs {
			ip := net.ParseIP(a)
			if ip == nil {
				t.Fatalf("zone: %q is not an address", a)
			}
			answers[name] = append(answers[name], net.IPAddr{IP: ip})
		}
	}
	return func(_ context.Context, host string) ([]net.IPAddr, error) {
		if a, ok := answers[strings.TrimSuffix(host, ".")]; ok {
			return a, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}

// rebinding answers first with a public address, then with loopback: the
// name passes the check at creation and points inside at delivery.
func rebinding(name string) (resolverFunc, *atomic.Int32) {
	calls := new(atomic.Int32)
	return func(_ context.Context, host string) ([]net.IPAddr, error) {
		if host != name {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		if calls.Add(1) == 1 {
			return []net.IPAddr{{IP: net.ParseIP("93.184.215.14")}}, nil
		}
		return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}}, nil
	}, calls
}

const publicV4 = "93.184.215.14"

func testZone(t *testing.T) resolverFunc {
	return zone(t, map[string][]string{
		"example.test":             {publicV4, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"hooks.example.test":       {publicV4},
		"internal.test":            {"127.0.0.1"},
		"metadata.google.internal": {"169.254.169.254"},
		"corp.test":                {"10.1.2.3"},
		"mapped.test":              {"::ffff:10.0.0.1"},
		"v6loop.test":              {"::1"},
		"mixed.test":               {publicV4, "192.168.0.10"},
		"mixed6.test":              {"2606:4700:4700::1111", "fd00:ec2::254"},
		"localhost":                {"127.0.0.1"},
		"0x7f000001":               {"127.0.0.1"}, // what inet_aton-based resolvers answer
		"2130706433":               {"127.0.0.1"},
	})
}

func TestBlocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		reason string // "" means allowed
	}{
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456:789a::1", "private"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"169.254.169.254", "metadata"},
		{"100.100.100.200", "metadata"},
		{"fd00:ec2::254", "metadata"},
		{"100.64.0.1", "shared"},
		{"100.127.255.255", "shared"},
		{"192.0.0.8", "IETF"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.1", "documentation"},
		{"203.0.113.1", "documentation"},
		{"2001:db8::1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"ff05::1:3", "multicast"},
		// IPv6 addresses embedding an IPv4 name the embedded address and its reason.
		{"::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1 (loopback)"},
		{"::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254 (metadata)"},
		{"::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1 (private)"},
		{"::127.0.0.1", "IPv4-compatible 127.0.0.1 (loopback)"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"64:ff9b::127.0.0.1", "NAT64 127.0.0.1 (loopback)"},
		{"64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254 (metadata)"},
		{"2002:7f00:1::1", "6to4 127.0.0.1 (loopback)"},
		{"2002:a9fe:a9fe::1", "6to4 169.254.169.254 (metadata)"},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo 127.0.0.1 (loopback)"}, // client 127.0.0.1, obfuscated
		{"2001:0:a00:1:8000:63bf:f7f7:f7f7", "Teredo 10.0.0.1 (private)"},       // server 10.0.0.1
		// Beyond global unicast.
		{"100::1", "discard"},
		{"fec0::1", "site-local"},
		{"4000::1", "reserved"},
		// Public addresses.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{publicV4, ""},
		{"100.63.255.255", ""},
		{"172.32.0.1", ""},
		{"2606:4700:4700::1111", ""},
		{"2a00:1450:4001:80b::200e", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
		{"2002:808:808::1", ""},
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", ""}, // Teredo, client 8.8.8.8
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			reason, blocked := destination.Blocked(netip.MustParseAddr(tt.addr))
			if tt.reason == "" {
				if blocked {
					t.Fatalf("Blocked(%s) = %q, want allowed", tt.addr, reason)
				}
				return
			}
			if !blocked || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Blocked(%s) = %q, %v; want blocked, reason containing %q", tt.addr, reason, blocked, tt.reason)
			}
		})
	}
	if reason, blocked := destination.Blocked(netip.Addr{}); !blocked {
		t.Errorf("Blocked(zero Addr) = %q, false; want blocked", reason)
	}
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want []string // the error names these (the address and why)
	}{
		// Literal addresses, one per range.
		{"unspecified", "https://0.0.0.0/", []string{"0.0.0.0", "unspecified"}},
		{"loopback", "https://127.0.0.1/hook", []string{"127.0.0.1", "loopback"}},
		{"loopback high", "https://127.255.255.254:8443/", []string{"127.255.255.254", "loopback"}},
		{"private 10", "https://10.0.0.1/", []string{"10.0.0.1", "private"}},
		{"private 172", "https://172.16.5.4/", []string{"172.16.5.4", "private"}},
		{"private 192", "https://192.168.0.1/", []string{"192.168.0.1", "private"}},
		{"link-local", "https://169.254.10.10/", []string{"169.254.10.10", "link-local"}},
		{"cloud metadata", "https://169.254.169.254/latest/meta-data/", []string{"169.254.169.254", "metadata"}},
		{"alibaba metadata", "https://100.100.100.200/", []string{"100.100.100.200", "metadata"}},
		{"shared CGNAT", "https://100.64.1.1/", []string{"100.64.1.1", "shared"}},
		{"IETF", "https://192.0.0.170/", []string{"192.0.0.170", "IETF"}},
		{"documentation", "https://198.51.100.7/", []string{"198.51.100.7", "documentation"}},
		{"benchmarking", "https://198.18.0.1/", []string{"198.18.0.1", "benchmarking"}},
		{"reserved", "https://250.1.2.3/", []string{"250.1.2.3", "reserved"}},
		{"broadcast", "https://255.255.255.255/", []string{"255.255.255.255", "broadcast"}},
		{"multicast", "https://224.0.0.251/", []string{"224.0.0.251", "multicast"}},
		{"IPv6 unspecified", "https://[::]/", []string{"::", "unspecified"}},
		{"IPv6 loopback", "https://[::1]/", []string{"::1", "loopback"}},
		{"IPv6 loopback with port", "https://[::1]:8443/", []string{"::1", "loopback"}},
		{"IPv6 unique local", "https://[fd00::1]/", []string{"fd00::1", "private"}},
		{"IPv6 link-local", "https://[fe80::1]/", []string{"fe80::1", "link-local"}},
		{"IPv6 link-local with zone", "https://[fe80::1%25eth0]/", []string{"fe80::1", "link-local"}},
		{"IPv6 multicast", "https://[ff02::1]/", []string{"ff02::1", "multicast"}},
		{"IPv6 documentation", "https://[2001:db8::1]/", []string{"2001:db8::1", "documentation"}},
		{"AWS IPv6 metadata", "https://[fd00:ec2::254]/", []string{"fd00:ec2::254", "metadata"}},
		{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/", []string{"127.0.0.1", "loopback"}},
		{"IPv4-mapped loopback in hex", "https://[::ffff:7f00:1]/", []string{"127.0.0.1", "loopback"}},
		{"IPv4-mapped metadata", "https://[::ffff:169.254.169.254]/", []string{"169.254.169.254", "metadata"}},
		{"IPv4-compatible loopback", "https://[::127.0.0.1]/", []string{"127.0.0.1", "loopback"}},
		{"NAT64 loopback", "https://[64:ff9b::7f00:1]/", []string{"127.0.0.1", "NAT64", "loopback"}},
		{"6to4 private", "https://[2002:c0a8:1::1]/", []string{"192.168.0.1", "6to4", "private"}},
		{"Teredo loopback", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", []string{"127.0.0.1", "Teredo", "loopback"}},
		// Spellings of 127.0.0.1 that inet_aton (and so some resolvers) and WHATWG URL parsers accept.
		{"decimal", "https://2130706433/", []string{"2130706433"}},
		{"hex", "https://0x7f000001/", []string{"0x7f000001"}},
		{"octal", "https://0177.0.0.1/", []string{"0177.0.0.1"}},
		{"octal whole", "https://017700000001/", []string{"017700000001"}},
		{"hex dotted", "https://0x7f.0.0.1/", []string{"0x7f.0.0.1"}},
		{"short form", "https://127.1/", []string{"127.1"}},
		{"trailing dot", "https://127.0.0.1./", []string{"127.0.0.1."}},
		{"percent-encoded", "https://%31%32%37.0.0.1/", nil},
		// Names.
		{"localhost", "https://localhost/", []string{"localhost"}},
		{"localhost upper case", "https://LOCALHOST:8443/", []string{"localhost"}},
		{"localhost trailing dot", "https://localhost./", []string{"localhost"}},
		{"localhost subdomain", "https://app.localhost/", []string{"localhost"}},
		{"name to loopback", "https://internal.test/", []string{"internal.test", "127.0.0.1", "loopback"}},
		{"name to metadata", "https://metadata.google.internal/computeMetadata/v1/", []string{"169.254.169.254", "metadata"}},
		{"name to private", "https://corp.test/", []string{"10.1.2.3", "private"}},
		{"name to IPv4-mapped private", "https://mapped.test/", []string{"10.0.0.1", "private"}},
		{"name to IPv6 loopback", "https://v6loop.test/", []string{"::1", "loopback"}},
		{"name with one blocked address", "https://mixed.test/", []string{"192.168.0.10", "private"}},
		{"name with one blocked IPv6 address", "https://mixed6.test/", []string{"fd00:ec2::254", "metadata"}},
		{"name that does not exist", "https://nowhere.test/", []string{"nowhere.test"}},
		// Shape.
		{"http", "http://example.test/", []string{"https"}},
		{"http to public address", "http://" + publicV4 + "/", []string{"https"}},
		{"ftp", "ftp://example.test/", []string{"scheme"}},
		{"file", "file:///etc/passwd", []string{"scheme"}},
		{"gopher", "gopher://example.test:70/", []string{"scheme"}},
		{"javascript", "javascript:alert(1)", []string{"scheme"}},
		{"no scheme", "//example.test/hook", []string{"scheme"}},
		{"relative", "/hook", []string{"scheme"}},
		{"empty", "", []string{"scheme"}},
		{"no host", "https:///hook", []string{"host"}},
		{"opaque", "https:example.test", []string{"host"}},
		{"only a dot", "https://./", []string{"host"}},
		{"user info", "https://user:secret@example.test/", []string{"user info"}},
		{"user only", "https://user@example.test/", []string{"user info"}},
		{"empty user info", "https://@example.test/", []string{"user info"}},
		{"fragment", "https://example.test/hook#part", []string{"fragment"}},
		{"empty fragment", "https://example.test/hook#", []string{"fragment"}},
		{"port zero", "https://example.test:0/", []string{"port"}},
		{"port out of range", "https://example.test:65536/", []string{"port"}},
		{"too long", "https://example.test/" + strings.Repeat("a", 2049-len("https://example.test/")), []string{"2048"}},
		{"unparsable", "https://exa mple.test/", nil},
		{"control character", "https://example.test/\x00", nil},
	}
	p := destination.Policy{Resolver: testZone(t)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := p.Check(t.Context(), tt.url)
			if !errors.Is(err, destination.ErrRefused) {
				t.Fatalf("Check(%q) = %v, %v; want an error wrapping ErrRefused", tt.url, u, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check(%q) error %q does not name %q", tt.url, err, w)
				}
			}
		})
	}
}

func TestCheckDoesNotEchoSecrets(t *testing.T) {
	t.Parallel()
	// Webhook URLs often carry a token; refusals end up in logs and answers.
	p := destination.Policy{Resolver: testZone(t)}
	for _, raw := range []string{
		"https://127.0.0.1/hook?token=s3cr3t",
		"https://user:s3cr3t@example.test/",
		"https://internal.test/hook?token=s3cr3t",
	} {
		_, err := p.Check(t.Context(), raw)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Check(%q) = %v; want a refusal that does not repeat the secret", raw, err)
		}
	}
}

func TestCheckAccepts(t *testing.T) {
	t.Parallel()
	p := destination.Policy{Resolver: testZone(t)}
	exact := "https://example.test/" + strings.Repeat("a", 2048-len("https://example.test/"))
	for _, raw := range []string{
		"https://example.test/hook",
		"https://hooks.example.test:8443/in?tenant=a&x=1",
		"HTTPS://Example.test/hook",
		"https://example.test./hook",
		"https://" + publicV4 + "/",
		"https://[2606:4700:4700::1111]/",
		"https://[::ffff:93.184.215.14]/",
		"https://[64:ff9b::808:808]/",
		exact,
	} {
		t.Run(raw[:min(len(raw), 60)], func(t *testing.T) {
			t.Parallel()
			u, err := p.Check(t.Context(), raw)
			if err != nil {
				t.Fatalf("Check(%q) = %v; want accepted", raw, err)
			}
			if u.Scheme != "https" || u.Hostname() == "" {
				t.Fatalf("Check(%q) = %v; want the parsed https URL", raw, u)
			}
		})
	}
}

func TestCheckResolverFailureIsNotARefusal(t *testing.T) {
	t.Parallel()
	// A DNS outage is the server's problem (5xx, retry), not a bad URL (400).
	p := destination.Policy{Resolver: resolverFunc(func(context.Context, string) ([]net.IPAddr, error) {
		return nil, &net.DNSError{Err: "i/o timeout", Name: "example.test", IsTimeout: true}
	})}
	_, err := p.Check(t.Context(), "https://example.test/")
	if err == nil || errors.Is(err, destination.ErrRefused) {
		t.Fatalf("Check with a timing-out resolver = %v; want an error that is not ErrRefused", err)
	}
	empty := destination.Policy{Resolver: resolverFunc(func(context.Context, string) ([]net.IPAddr, error) {
		return nil, nil
	})}
	if _, err := empty.Check(t.Context(), "https://example.test/"); !errors.Is(err, destination.ErrRefused) {
		t.Fatalf("Check of a name with no addresses = %v; want ErrRefused", err)
	}
}

func TestCheckAllowPrivate(t *testing.T) {
	t.Parallel()
	p := destination.Policy{AllowPrivate: true, Resolver: testZone(t)}
	for _, raw := range []string{
		"http://127.0.0.1:8080/hook",
		"http://localhost:9000/hook",
		"http://[::1]/",
		"https://10.0.0.1/",
		"https://169.254.169.254/",
		"http://internal.test/",
		"https://example.test/",
	} {
		if _, err := p.Check(t.Context(), raw); err != nil {
			t.Errorf("AllowPrivate: Check(%q) = %v; want accepted", raw, err)
		}
	}
	for _, raw := range []string{
		"ftp://127.0.0.1/",
		"file:///etc/passwd",
		"http://user:pw@localhost/",
		"http:///hook",
		"http://localhost/#x",
		"http://0x7f000001/",
	} {
		if _, err := p.Check(t.Context(), raw); !errors.Is(err, destination.ErrRefused) {
			t.Errorf("AllowPrivate: Check(%q) = %v; want ErrRefused", raw, err)
		}
	}
}
