package launcher

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
)

// forwardedVars are gorun's own settings that reach the ranks of every
// host when set in the launcher's environment (a rank on another host
// starts from its daemon's environment, not the launcher's).
var forwardedVars = []string{rendezvous.EnvDebug, rendezvous.EnvTransport}

// multiHost is the part of a job that runs its ranks on daemons.
type multiHost struct {
	hosts      []Host
	place      []Placement // by rank
	localSizes []int       // by host
	secret     []byte
	net        netip.Prefix // valid with Config.Net
	dir        string       // the ranks' working directory
	exports    []string     // NAME=VALUE set for every rank on top of the daemon's environment
	stage      bool         // ship the executable

	conns []*daemonConn // by host; nil for a host without ranks
	sum   []byte        // SHA-256 of the staged executable
}

// newMultiHost checks the multi-host part of cfg and places the ranks.
// base is the launcher's environment for -x.
func newMultiHost(cfg Config, base []string) (*multiHost, error) {
	m := &multiHost{hosts: cfg.Hosts, secret: cfg.Secret}
	var err error
	// A job that cannot be placed is reported as such, whatever else is
	// missing.
	if m.place, m.localSizes, err = Map(cfg.Hosts, cfg.N, cfg.MapByNode, cfg.Oversubscribe); err != nil {
		return nil, err
	}
	if len(cfg.Secret) == 0 {
		return nil, usageErrorf(nil, "a job on several hosts needs the daemons' shared secret (--secret-file; make one with \"gorun secret\")")
	}
	if cfg.Net != "" {
		if m.net, err = netip.ParsePrefix(cfg.Net); err != nil {
			return nil, usageErrorf(err, "--net %q is not a network such as 10.0.0.0/24", cfg.Net)
		}
		m.net = m.net.Masked()
	}
	if m.dir = cfg.Wdir; m.dir == "" {
		if m.dir, err = os.Getwd(); err != nil {
			return nil, usageErrorf(err, "current directory: %v (give one with --wdir)", err)
		}
	} else if m.dir, err = filepath.Abs(m.dir); err != nil {
		return nil, usageErrorf(err, "working directory %q: %v", cfg.Wdir, err)
	}
	for _, name := range forwardedVars {
		if v, ok := lookupEnv(base, name); ok {
			m.exports = setEnv(m.exports, name, v)
		}
	}
	for _, spec := range cfg.Env { // validated by jobEnv
		name, value, hasValue := strings.Cut(spec, "=")
		if !hasValue {
			v, ok := lookupEnv(base, name)
			if !ok {
				continue
			}
			value = v
		}
		m.exports = setEnv(m.exports, name, value)
	}
	if m.net.IsValid() {
		m.exports = setEnv(m.exports, rendezvous.EnvNet, m.net.String())
	}
	return m, nil
}

// connectHosts connects to the daemon of every host that gets ranks, all at
// once, and stages the program if asked to.
func (j *job) connectHosts(ctx context.Context) error {
	m := j.multi
	m.conns = make([]*daemonConn, len(m.hosts))
	errs := make([]error, len(m.hosts))
	var wg sync.WaitGroup
	for h, host := range m.hosts {
		if m.localSizes[h] == 0 {
			continue
		}
		wg.Add(1)
		go func() { // dials one daemon; exits when connected or failed (bounded by dialTimeout and the auth deadline)
			defer wg.Done()
			m.conns[h], errs[h] = dialDaemon(ctx, host.Name, host.Addr(), m.secret, j.log, &j.wg)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if !m.stage {
		return nil
	}
	exe, sum, err := readExe(j.path)
	if err != nil {
		return err
	}
	m.sum = sum
	for _, dc := range m.conns {
		if dc == nil {
			continue
		}
		if err := dc.stage(ctx, exe, sum); err != nil {
			return err
		}
	}
	return nil
}

// closeAll ends the job on every daemon; see daemonConn.close.
func (m *multiHost) closeAll() {
	var wg sync.WaitGroup
	for _, dc := range m.conns {
		if dc != nil {
			wg.Add(1)
			go func() { // ends one session: bounded by endWait
				defer wg.Done()
				dc.close()
			}()
		}
	}
	wg.Wait()
}

// rendezvousAddr picks the address the job's rendezvous server listens on:
// the launcher's address in Config.Net, or else the local address of its
// connection to the first daemon reached over something other than
// loopback (the first daemon's, if all are on loopback).
func (m *multiHost) rendezvousAddr() (string, error) {
	if m.net.IsValid() {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return "", fmt.Errorf("launcher: list network interfaces: %w", err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && m.net.Contains(ip.Unmap()) {
				return net.JoinHostPort(ip.Unmap().String(), "0"), nil
			}
		}
		return "", usageErrorf(nil, "no network interface of this host has an address in --net %s (see ip addr)", m.net)
	}
	var first netip.Addr
	for _, dc := range m.conns {
		if dc == nil {
			continue
		}
		ap, err := netip.ParseAddrPort(dc.c.LocalAddr().String())
		if err != nil {
			continue
		}
		ip := ap.Addr().Unmap()
		if !ip.IsLoopback() {
			return net.JoinHostPort(ip.String(), "0"), nil
		}
		if !first.IsValid() {
			first = ip
		}
	}
	if !first.IsValid() {
		return "127.0.0.1:0", nil
	}
	return net.JoinHostPort(first.String(), "0"), nil
}

// startRemote asks every daemon to start its host's ranks, one request per
// host, then waits for each rank's start in host order. It returns the
// started ranks (each with its waiter and forwarders running) and the first
// error; ranks a daemon started that are not returned are killed by their
// daemon when the job's connection to it closes.
func (j *job) startRemote(ctx context.Context, ident rankEnv, outs, errs []*lineSink) ([]*process, error) {
	m := j.multi
	rrs := make([]*remoteRank, j.cfg.N) // registered and not (yet) handed to a process
	defer func() {
		for _, rr := range rrs {
			if rr != nil {
				closeAll(rr.outR, rr.errR)
			}
		}
	}()
	byHost := make([][]int, len(m.hosts))
	for r, pl := range m.place {
		byHost[pl.Host] = append(byHost[pl.Host], r)
	}
	path := j.path
	if m.stage {
		path = ""
	} else if !strings.Contains(j.cfg.Program, "/") {
		path = j.cfg.Program // looked up on the daemon's PATH
	}
	for h, ranks := range byHost {
		if len(ranks) == 0 {
			continue
		}
		dc := m.conns[h]
		req := dmsg{op: dopSpawn, job: j.id, path: path, dir: m.dir, argv: j.argv, env: m.exports, sha: m.sum}
		for _, r := range ranks {
			rr, err := dc.addRank(r)
			if err != nil {
				return nil, err
			}
			rrs[r] = rr
			id := ident
			id.rank, id.localRank, id.localSize, id.host = r, m.place[r].LocalRank, m.localSizes[h], m.hosts[h].Name
			req.ranks = append(req.ranks, rankReq{rank: r, env: id.environ(nil)})
		}
		if err := dc.send(&req); err != nil {
			return nil, err
		}
	}
	var procs []*process
	for h, ranks := range byHost {
		dc := m.conns[h]
		for _, r := range ranks {
			rr := rrs[r]
			var pid int
			for pid == 0 {
				select { // a start already reported wins over the cases below
				case pid = <-rr.started:
					continue
				default:
				}
				select {
				case pid = <-rr.started:
				case msg := <-dc.ctl:
					if msg.op == dopError {
						return procs, dc.hostError(msg)
					}
				case <-dc.lost:
					return procs, fmt.Errorf("launcher: lost the daemon on host %s while starting ranks: %w", dc.host, dc.lostErr)
				case <-ctx.Done():
					return procs, nil // the supervision loop reports the interruption
				}
			}
			p := &process{rank: r, pid: pid, host: dc.host, remote: rr, stdout: rr.outR, stderr: rr.errR,
				drained: make(chan struct{})}
			p.forwarders.Store(2)
			rrs[r] = nil
			procs = append(procs, p)
			j.watch(p, outs, errs)
		}
	}
	return procs, nil
}
