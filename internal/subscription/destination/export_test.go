package destination

import "syscall"

// Control exposes the transport's connect-time check (net.Dialer.Control),
// which the dialer's own check normally makes unreachable.
func (p Policy) Control(network, address string, c syscall.RawConn) error {
	return p.control(network, address, c)
}
