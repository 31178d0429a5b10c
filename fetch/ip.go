package fetch

import "net/netip"

// Addresses that are not on the public internet, or that reach something
// other than a host on it (this host, the local network, a cloud's metadata
// service, multicast groups, translators into IPv4).
var (
	nonPublic4 = prefixes(
		"0.0.0.0/8",       // "this network", 0.0.0.0 reaches this host
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata services
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast, deprecated
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
	)
	// Global unicast IPv6 is 2000::/3; everything outside it (loopback,
	// unspecified, IPv4-compatible ::/96, unique local fc00::/7, link-local
	// fe80::/10, site-local, multicast ff00::/8, discard 100::/64) is refused
	// without a list. Within it, these are not public hosts:
	nonPublic6 = prefixes(
		"2001::/23",     // IETF protocol assignments, Teredo 2001::/32 among them
		"2001:db8::/32", // documentation
		"3fff::/20",     // documentation
		"2002::/16",     // 6to4: refused whole, it embeds any IPv4 address
	)
	// NAT64 embeds an IPv4 address in its last 32 bits; it is as public as
	// that address. The local-use NAT64 prefix 64:ff9b:1::/48 is refused, as
	// it lies outside 2000::/3.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// public reports whether a is an address of a host on the public internet.
func public(a netip.Addr) bool {
	a = a.WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if !a.IsValid() {
		return false
	}
	list := nonPublic4
	if a.Is6() {
		if b := a.As16(); b[0]&0xe0 != 0x20 {
			return false
		}
		list = nonPublic6
	}
	for _, p := range list {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
