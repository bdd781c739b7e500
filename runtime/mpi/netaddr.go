package mpi

import (
	"fmt"
	"net"
	"net/netip"
)

// listenAddr picks the address this rank's TCP endpoint listens on and
// publishes: peers on other hosts dial it, so it must be reachable from
// them, never a loopback or container-bridge address picked by accident.
//
// With cidr (GORUN_NET, from gorun --net) it is this host's address inside
// that network. Otherwise it is the source address the kernel uses to reach
// the launcher's rendezvous server: the interface that routes to the
// launcher routes to its peers too (127.0.0.1 when the whole job runs on one
// machine).
func listenAddr(rendezvous, cidr string) (string, error) {
	if cidr != "" {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			return "", fmt.Errorf("mpi: GORUN_NET=%q is not a network like 10.0.0.0/24: %w", cidr, err)
		}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return "", fmt.Errorf("mpi: list network interfaces: %w", err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if ok && prefix.Contains(ip.Unmap()) {
				return net.JoinHostPort(ip.Unmap().String(), "0"), nil
			}
		}
		return "", fmt.Errorf("mpi: no network interface of this host has an address in GORUN_NET=%s (see `ip addr`)", cidr)
	}
	// Connecting a UDP socket sends nothing; it only asks the kernel which
	// source address it would use.
	c, err := net.Dial("udp", rendezvous)
	if err != nil {
		return "", fmt.Errorf("mpi: find the interface that reaches the launcher at %s: %w", rendezvous, err)
	}
	defer c.Close()
	host, _, err := net.SplitHostPort(c.LocalAddr().String())
	if err != nil {
		return "", fmt.Errorf("mpi: local address %s: %w", c.LocalAddr(), err)
	}
	return net.JoinHostPort(host, "0"), nil
}
