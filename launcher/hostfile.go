package launcher

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultDaemonPort is the port of a host's gorun daemon when the hostfile
// or --host list does not give one.
const DefaultDaemonPort = 7070

// Limits on host lists. A hostfile may be any file the user points at, so
// the parser bounds what it reads instead of trusting it.
const (
	// maxHostLine is the longest hostfile line accepted, in bytes
	// (without the line ending).
	maxHostLine = 4096
	// maxHosts is the most distinct hosts one host list may name.
	maxHosts = 65536
	// maxHostSlots bounds Slots and MaxSlots of one host (after adding up
	// the slots of repeated lines).
	maxHostSlots = 1 << 20
	// maxHostName is the longest host name accepted (that of DNS).
	maxHostName = 253
	// maxMapRanks bounds the number of ranks Map places: more is a typo,
	// not a job.
	maxMapRanks = 1 << 22
	// maxListedHosts is how many hosts an error message lists.
	maxListedHosts = 8
)

// ErrHostfile is wrapped by every error of [ParseHostfile] and [ParseHosts]
// about the content of a host list. These errors also wrap [ErrUsage]
// (the gorun command exits with status 2 for them).
var ErrHostfile = errors.New("launcher: invalid host list")

// ErrNotEnoughSlots is wrapped by the error of [Map] when the ranks do not
// fit on the hosts: more ranks than slots without oversubscription, or more
// than the hosts' max_slots allow with it. It also wraps [ErrUsage].
var ErrNotEnoughSlots = errors.New("launcher: not enough slots")

// A Host is one machine a job may use.
type Host struct {
	// Name is the host name or IP address as written, without the
	// brackets of an IPv6 address. Dial [Host.Addr], not Name+":"+Port.
	Name string
	// Port is the port of the host's daemon; 0 means [DefaultDaemonPort].
	Port int
	// Slots is how many ranks the host takes before it is oversubscribed,
	// at least 1.
	Slots int
	// MaxSlots, if not 0, is how many ranks the host takes at most, even
	// with oversubscription; it is then at least Slots.
	MaxSlots int
	// Line is the hostfile line where the host first appears; 0 for a
	// host of a --host list.
	Line int
}

// Addr returns the address the host's daemon listens at, "name:port"
// ("[v6addr]:port" for an IPv6 address), with [DefaultDaemonPort] if Port
// is 0.
func (h Host) Addr() string {
	port := h.Port
	if port == 0 {
		port = DefaultDaemonPort
	}
	return net.JoinHostPort(h.Name, strconv.Itoa(port))
}

// label returns the host in --host syntax, name:slots[@port], for messages.
func (h Host) label() string {
	s := h.Name
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	s += ":" + strconv.Itoa(h.Slots)
	if h.Port != 0 {
		s += "@" + strconv.Itoa(h.Port)
	}
	return s
}

// ParseHostfile reads a hostfile: one host per line, in Open MPI's syntax,
// Hydra's, or a mix of both:
//
//	# comment (also after a host: node01:4  # the big one)
//	node01                          1 slot, daemon on port 7070
//	node01 slots=4 max_slots=8      Open MPI: 4 slots, at most 8 ranks
//	node02:4                        Hydra: 4 slots
//	node03 slots=2 port=7071        daemon on port 7071
//	node03:2@7071                   the same, in --host syntax
//	10.0.0.7:2                      IPv4 address
//	[fe80::1%eth0]:2                IPv6 address: always in brackets
//
// The first word of a line is a host in the syntax of [ParseHosts]
// (name[:slots][@port]); the words after it are key=value settings:
//
//	slots=N      ranks the host takes by default, 1..1048576
//	max_slots=N  ranks it takes at most with --oversubscribe (>= slots;
//	             max-slots is accepted too); default: no limit
//	port=N       port of the host's gorun daemon, 1..65535; default 7070
//
// Spaces around '=' are allowed. A key may appear once per line, and slots
// and port may be given either way but not both. A host without slots has 1
// slot. (Open MPI gives it one slot per core, but the number of cores of a
// remote host is not known before its daemon is asked.) Host names may
// contain ASCII letters, digits, '.', '-' and '_' and must not start with
// '-' or '.'; a name made of digits and dots must be an IPv4 address.
//
// As in Open MPI, a host listed on several lines is one Host whose slots
// are the sum of the lines' slots: "node01:2" and "node01 slots=2" on two
// lines make node01 with 4 slots. Lines are the same host when their names
// are equal ignoring case (IP addresses: the same address) and their
// daemon ports are equal; "node01" and "node01@7071" are two hosts (two
// daemons on one machine). The merged host keeps the Name, Port and Line
// of its first line; max_slots, if given on several of its lines, must be
// the same on each. Hosts are returned in the order of their first line.
//
// Blank lines and comments ('#' to the end of the line) are ignored, as
// are a UTF-8 byte order mark and "\r\n" line endings. A line may be at
// most 4096 bytes long and a file may name at most 65536 hosts. A file
// without any host is an error.
//
// Errors about the content wrap [ErrHostfile] and [ErrUsage] and name the
// file (name, "hostfile" if empty), the line, the offending word, what is
// wrong and what is accepted, e.g.
//
//	launcher: hosts.txt:3: "slots=x": slots must be a positive number (write node01 slots=4 or node01:4)
//
// An error reading r is returned wrapped, without [ErrHostfile].
func ParseHostfile(r io.Reader, name string) ([]Host, error) {
	if name == "" {
		name = "hostfile"
	}
	sc := bufio.NewScanner(r)
	// Room for a line of maxHostLine bytes and "\r\n"; longer lines are
	// reported either by the scanner or by the length check below.
	sc.Buffer(make([]byte, 0, 1024), maxHostLine+2)
	set := newHostSet()
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		where := fmt.Sprintf("%s:%d", name, line)
		if len(text) > maxHostLine {
			return nil, hostErrorf(where, "line longer than %d bytes (is this a hostfile? write one host per line: node01 slots=4)", maxHostLine)
		}
		if err := set.parseLine(text, line, where); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, hostErrorf(fmt.Sprintf("%s:%d", name, line+1), "line longer than %d bytes (is this a hostfile? write one host per line: node01 slots=4)", maxHostLine)
		}
		return nil, fmt.Errorf("launcher: reading hostfile %s: %w", name, err)
	}
	if len(set.hosts) == 0 {
		return nil, hostErrorf(name, "no hosts in the file, only comments and blank lines (write one host per line: node01 slots=4 or node01:4)")
	}
	return set.hosts, nil
}

// ParseHosts parses the value of gorun's --host (-H) option: a
// comma-separated list of hosts, each
//
//	name[:slots][@port]
//
// where name is a host name or IPv4 address (the characters allowed are
// those of [ParseHostfile]) or an IPv6 address in brackets, slots is
// 1..1048576 (default 1) and port the daemon's port, 1..65535 (default
// [DefaultDaemonPort]). For example
//
//	node01:4,node02:4,node03          4 + 4 + 1 slots
//	node01,node01                     node01 with 2 slots
//	localhost:2@7070,localhost:2@7071 two daemons on this machine
//	[::1]:4,[fe80::1%eth0]:2@7071     IPv6 addresses
//
// ':' always introduces the slots and '@' the port, so an address is never
// mistaken for either: an IPv6 address must be written in brackets, and
// "user@host" is rejected. Spaces around a host are ignored. As in a
// hostfile, a host named several times (same name ignoring case, same
// port) is one Host whose slots are the sum. Every Host has Line 0 and
// MaxSlots 0 (there is no max_slots in this syntax).
//
// Errors wrap [ErrHostfile] and [ErrUsage] and name the position of the
// host in the list, e.g.
//
//	launcher: --host item 2: "node02:x": slots must be a positive number (write node02:4)
func ParseHosts(s string) ([]Host, error) {
	if strings.TrimSpace(s) == "" {
		return nil, hostErrorf("--host", "empty host list (write --host node01:4,node02:4)")
	}
	set := newHostSet()
	for i, item := range strings.Split(s, ",") {
		where := fmt.Sprintf("--host item %d", i+1)
		item = strings.Trim(item, " \t")
		if item == "" {
			return nil, hostErrorf(where, "empty host (hosts are separated by single commas: node01:4,node02:4)")
		}
		spec, err := parseHostWord(item, false)
		if err != nil {
			return nil, hostErrorf(where, "%q: %v", clip(item), err)
		}
		if err := set.add(spec, 0, where, item); err != nil {
			return nil, err
		}
	}
	return set.hosts, nil
}

// hostErrorf returns an error wrapping ErrHostfile and ErrUsage whose message
// is "launcher: where: " and the formatted text.
func hostErrorf(where, format string, args ...any) error {
	return usageErrorf(ErrHostfile, "%s: %s", where, fmt.Sprintf(format, args...))
}

// clip shortens s for quoting in a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// hostSpec is one host as written on a line or in a --host item; 0 means
// not given.
type hostSpec struct {
	name     string
	key      string // identity of the machine: lowercased name or canonical IP
	slots    int
	maxSlots int
	port     int
}

// hostSet accumulates hosts, merging repeated ones.
type hostSet struct {
	hosts   []Host
	index   map[string]int // key and effective port → index in hosts
	maxLine []int          // line that set hosts[i].MaxSlots
}

func newHostSet() *hostSet {
	return &hostSet{index: make(map[string]int)}
}

// add adds spec (from line, 0 for --host), merging it with an earlier host
// of the same machine and port. word is what is quoted in errors.
func (s *hostSet) add(spec hostSpec, line int, where, word string) error {
	slots := spec.slots
	if slots == 0 {
		slots = 1
	}
	port := spec.port
	if port == 0 {
		port = DefaultDaemonPort
	}
	key := spec.key + "@" + strconv.Itoa(port)
	i, ok := s.index[key]
	if !ok {
		if len(s.hosts) == maxHosts {
			return hostErrorf(where, "more than %d hosts", maxHosts)
		}
		s.index[key] = len(s.hosts)
		s.hosts = append(s.hosts, Host{Name: spec.name, Port: spec.port, Slots: slots, MaxSlots: spec.maxSlots, Line: line})
		s.maxLine = append(s.maxLine, line)
		return nil
	}
	h := &s.hosts[i]
	if spec.maxSlots != 0 {
		if h.MaxSlots != 0 && h.MaxSlots != spec.maxSlots {
			return hostErrorf(where, "%q: max_slots=%d differs from max_slots=%d on line %d for the same host (give max_slots once, or the same on every line)",
				clip(word), spec.maxSlots, h.MaxSlots, s.maxLine[i])
		}
		if h.MaxSlots == 0 {
			h.MaxSlots = spec.maxSlots
			s.maxLine[i] = line
		}
	}
	total := h.Slots + slots
	if total > maxHostSlots {
		return hostErrorf(where, "%q: %s would have %d slots, more than the limit of %d", clip(word), spec.name, total, maxHostSlots)
	}
	if h.MaxSlots != 0 && total > h.MaxSlots {
		return hostErrorf(where, "%q: %s is listed more than once, and its slots add up to %d, more than max_slots=%d (a repeated host adds its slots; remove the duplicate or raise max_slots)",
			clip(word), spec.name, total, h.MaxSlots)
	}
	h.Slots = total
	return nil
}

// parseLine parses one hostfile line and adds its host to s.
func (s *hostSet) parseLine(text string, line int, where string) error {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	words := splitWords(text)
	if len(words) == 0 {
		return nil
	}
	spec, err := parseHostWord(words[0], true)
	if err != nil {
		return hostErrorf(where, "%q: %v", clip(words[0]), err)
	}
	seen := make(map[string]bool)
	maxWord := ""
	if spec.slots != 0 {
		seen["slots"] = true
	}
	if spec.port != 0 {
		seen["port"] = true
	}
	for _, w := range words[1:] {
		key, val, ok := strings.Cut(w, "=")
		if !ok {
			return hostErrorf(where, "%q: expected key=value after the host name (slots=N, max_slots=N or port=N; one host per line)", clip(w))
		}
		if key == "max-slots" {
			key = "max_slots"
		}
		switch key {
		case "slots", "max_slots", "port":
		default:
			return hostErrorf(where, "%q: unknown key %q (accepted: slots=N, max_slots=N, port=N)", clip(w), clip(key))
		}
		if seen[key] {
			hint := fmt.Sprintf("%s %s=N", spec.name, key)
			switch key {
			case "slots":
				hint += " or " + spec.name + ":N, not both"
			case "port":
				hint += " or " + spec.name + "@N, not both"
			}
			return hostErrorf(where, "%q: %s given twice for one host (write %s)", clip(w), key, hint)
		}
		seen[key] = true
		switch key {
		case "slots":
			n, err := parseSlots(val, "slots", spec.name, true)
			if err != nil {
				return hostErrorf(where, "%q: %v", clip(w), err)
			}
			spec.slots = n
		case "max_slots":
			n, err := parseSlots(val, "max_slots", spec.name, true)
			if err != nil {
				return hostErrorf(where, "%q: %v", clip(w), err)
			}
			spec.maxSlots, maxWord = n, w
		case "port":
			n, err := parsePort(val, spec.name, true, false)
			if err != nil {
				return hostErrorf(where, "%q: %v", clip(w), err)
			}
			spec.port = n
		}
	}
	if spec.maxSlots != 0 {
		slots := max(spec.slots, 1)
		if spec.maxSlots < slots {
			return hostErrorf(where, "%q: max_slots=%d is less than slots=%d (max_slots is the most ranks the host may take, so at least slots)",
				clip(maxWord), spec.maxSlots, slots)
		}
	}
	return s.add(spec, line, where, words[0])
}

// splitWords splits a hostfile line at spaces and tabs, joining the words
// around '=' so that "slots = 4" is one word "slots=4".
func splitWords(text string) []string {
	f := strings.FieldsFunc(text, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\v' || r == '\f'
	})
	joins := func(i int) bool {
		return i+1 < len(f) && (strings.HasSuffix(f[i], "=") || strings.HasPrefix(f[i+1], "="))
	}
	var words []string
	for i := 0; i < len(f); i++ {
		w := f[i]
		if joins(i) {
			var b strings.Builder
			b.WriteString(w)
			for joins(i) {
				i++
				b.WriteString(f[i])
			}
			w = b.String()
		}
		words = append(words, w)
	}
	return words
}

// parseHostWord parses name[:slots][@port]; inFile selects the syntax
// suggested in messages.
func parseHostWord(w string, inFile bool) (hostSpec, error) {
	var spec hostSpec
	rest, portStr, hasPort := strings.Cut(w, "@")
	if hasPort && strings.Contains(portStr, "@") {
		return spec, errors.New("more than one '@' (write node01:4@7071: ':' gives the slots, '@' the daemon port)")
	}
	var slotsStr string
	var hasSlots bool
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return spec, errors.New("missing ']' after an IPv6 address (write [fe80::1]:4)")
		}
		inner := rest[1:end]
		after := rest[end+1:]
		if after != "" {
			if after[0] != ':' {
				return spec, fmt.Errorf("unexpected %q after ']' (write [fe80::1]:4@7071)", clip(after))
			}
			slotsStr, hasSlots = after[1:], true
		}
		addr, err := netip.ParseAddr(inner)
		if err != nil || !addr.Is6() {
			return spec, fmt.Errorf("%q is not an IPv6 address (brackets are only for IPv6 addresses: [fe80::1]:4)", clip(inner))
		}
		for i := 0; i < len(addr.Zone()); i++ {
			if !isNameByte(addr.Zone()[i]) {
				return spec, fmt.Errorf("invalid character %q in the zone of IPv6 address %q", addr.Zone()[i:i+1], clip(inner))
			}
		}
		spec.name, spec.key = inner, addr.String()
	} else {
		name := rest
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			if strings.Contains(rest[i+1:], ":") {
				return spec, errors.New("more than one ':' (':' gives the slots; an IPv6 address must be written in brackets: [fe80::1]:4)")
			}
			name, slotsStr, hasSlots = rest[:i], rest[i+1:], true
		}
		if err := checkName(name); err != nil {
			return spec, err
		}
		spec.name, spec.key = name, strings.ToLower(name)
	}
	if hasSlots {
		n, err := parseSlots(slotsStr, "slots", spec.name, inFile)
		if err != nil {
			return spec, err
		}
		spec.slots = n
	}
	if hasPort {
		n, err := parsePort(portStr, spec.name, inFile, true)
		if err != nil {
			return spec, err
		}
		spec.port = n
	}
	return spec, nil
}

// isNameByte reports whether c may appear in a host name.
func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
}

// checkName checks a host name or IPv4 address (not IPv6).
func checkName(name string) error {
	if name == "" {
		return errors.New("missing host name (write node01:4)")
	}
	if len(name) > maxHostName {
		return fmt.Errorf("host name longer than %d characters", maxHostName)
	}
	digitsAndDots := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isNameByte(c) {
			_, size := utf8.DecodeRuneInString(name[i:])
			return fmt.Errorf("invalid character %q in host name (allowed: letters, digits, '.', '-', '_'; IPv6 addresses in brackets: [fe80::1])", name[i:i+size])
		}
		if c != '.' && (c < '0' || c > '9') {
			digitsAndDots = false
		}
	}
	if name[0] == '-' || name[0] == '.' {
		return fmt.Errorf("host name must not start with %q", name[:1])
	}
	if digitsAndDots {
		if a, err := netip.ParseAddr(name); err != nil || !a.Is4() {
			return errors.New("not a valid IPv4 address (four numbers 0..255 separated by dots, without leading zeros: 10.0.0.7)")
		}
	}
	return nil
}

// allDigits reports whether s is a non-empty string of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseSlots parses the value of slots or max_slots (what) for host name.
func parseSlots(s, what, name string, inFile bool) (int, error) {
	example := name + ":4"
	if inFile {
		example = name + " " + what + "=4"
		if what == "slots" {
			example += " or " + name + ":4"
		}
	}
	n, err := strconv.Atoi(s)
	if !allDigits(s) || (err == nil && n == 0) {
		return 0, fmt.Errorf("%s must be a positive number (write %s)", what, example)
	}
	if err != nil || n > maxHostSlots {
		return 0, fmt.Errorf("%s must be at most %d", what, maxHostSlots)
	}
	return n, nil
}

// parsePort parses a daemon port for host name; at says that it was
// written after '@'.
func parsePort(s, name string, inFile, at bool) (int, error) {
	example := name + ":4@7071"
	if inFile {
		example = name + " port=7071 or " + name + "@7071"
	}
	n, err := strconv.Atoi(s)
	if !allDigits(s) || err != nil || n < 1 || n > 65535 {
		if at && s != "" && !allDigits(s) {
			return 0, fmt.Errorf("%q after '@' is not a port: '@' gives the daemon port, 1..65535, after the slots (write node01:4@7071); user@host is not supported",
				clip(s))
		}
		return 0, fmt.Errorf("port must be a number from 1 to 65535 (write %s)", example)
	}
	return n, nil
}

// A Placement says where a rank runs.
type Placement struct {
	// Host is the index of the rank's host in the hosts given to [Map].
	Host int
	// LocalRank is the rank's number among the job's ranks on that host,
	// 0..localSize-1, in increasing order of rank.
	LocalRank int
}

// Map places n ranks on hosts and returns, for each rank r, placements[r],
// and for each host h the number of ranks placed on it, localSizes[h]
// (possibly 0).
//
// By default ranks are placed by slot: host 0 takes ranks 0 to
// hosts[0].Slots-1, host 1 the next hosts[1].Slots ranks, and so on; with
// byNode they are dealt
// round-robin over the hosts (rank 0 on host 0, rank 1 on host 1, ...),
// skipping hosts whose slots are full. Either way only the first n slots
// in that order are used, so a job smaller than the hosts leaves the last
// slots (by slot) or last rounds (by node) empty.
//
// More ranks than the sum of the hosts' Slots is an error wrapping
// [ErrNotEnoughSlots] that says how many ranks were asked for, how many
// slots each host has and how to oversubscribe, unless oversubscribe is
// true. Then all slots are filled as above and the remaining ranks are
// dealt round-robin over the hosts, starting at host 0 and skipping hosts
// that have reached their MaxSlots; if the hosts' MaxSlots cannot hold n
// ranks, that is an error wrapping [ErrNotEnoughSlots] too.
//
// Map also returns an error wrapping [ErrUsage] if n < 1, n > 4194304,
// hosts is empty, or a host has Slots < 1 or MaxSlots (if not 0) < Slots.
// It does not look at Name, Port and Line.
func Map(hosts []Host, n int, byNode, oversubscribe bool) (placements []Placement, localSizes []int, err error) {
	if n < 1 {
		return nil, nil, usageErrorf(nil, "the number of ranks (-n) must be at least 1, got %d", n)
	}
	if n > maxMapRanks {
		return nil, nil, usageErrorf(nil, "too many ranks (-n %d): at most %d", n, maxMapRanks)
	}
	if len(hosts) == 0 {
		return nil, nil, usageErrorf(nil, "no hosts to place %d ranks on", n)
	}
	var total, limit int64
	unlimited := false
	for i, h := range hosts {
		if h.Slots < 1 || h.MaxSlots < 0 || (h.MaxSlots != 0 && h.MaxSlots < h.Slots) {
			return nil, nil, usageErrorf(nil, "host %d (%s) has %d slots and max_slots %d: slots must be at least 1 and max_slots 0 or at least slots",
				i, h.Name, h.Slots, h.MaxSlots)
		}
		total += int64(h.Slots)
		if h.MaxSlots == 0 {
			unlimited = true
		} else {
			limit += int64(h.MaxSlots)
		}
	}
	inSlots := n
	if int64(n) > total {
		if !oversubscribe {
			return nil, nil, usageErrorf(ErrNotEnoughSlots,
				"%d ranks requested but the hosts have only %d slots (%s): run fewer ranks (-n %d), give the hosts more slots (node01 slots=8 in a hostfile, node01:8 with --host), or pass --oversubscribe to run more ranks than slots",
				n, total, listHosts(hosts, Host.label), total)
		}
		if !unlimited && int64(n) > limit {
			return nil, nil, usageErrorf(ErrNotEnoughSlots,
				"%d ranks requested but the hosts' max_slots allow only %d ranks even with --oversubscribe (%s): run fewer ranks (-n %d) or raise max_slots",
				n, limit, listHosts(hosts, func(h Host) string { return fmt.Sprintf("%s max_slots=%d", h.label(), h.MaxSlots) }), limit)
		}
		inSlots = int(total)
	}

	placements = make([]Placement, 0, n)
	localSizes = make([]int, len(hosts))
	place := func(h int) {
		placements = append(placements, Placement{Host: h, LocalRank: localSizes[h]})
		localSizes[h]++
	}
	if byNode {
		dealRoundRobin(hosts, inSlots, localSizes, place, func(h Host) int { return h.Slots })
	} else {
		left := inSlots
		for i, h := range hosts {
			for k := 0; k < h.Slots && left > 0; k++ {
				place(i)
				left--
			}
		}
	}
	dealRoundRobin(hosts, n-inSlots, localSizes, place, func(h Host) int {
		if h.MaxSlots == 0 {
			return maxMapRanks
		}
		return h.MaxSlots
	})
	return placements, localSizes, nil
}

// dealRoundRobin places k ranks round-robin on the hosts h whose
// localSizes[h] is below capacity(hosts[h]), starting at host 0. The
// caller ensures that the capacities hold k more ranks.
func dealRoundRobin(hosts []Host, k int, localSizes []int, place func(int), capacity func(Host) int) {
	var active []int
	for h := range hosts {
		if localSizes[h] < capacity(hosts[h]) {
			active = append(active, h)
		}
	}
	for k > 0 && len(active) > 0 {
		next := active[:0]
		for _, h := range active {
			if k == 0 {
				break
			}
			place(h)
			k--
			if localSizes[h] < capacity(hosts[h]) {
				next = append(next, h)
			}
		}
		active = next
	}
}

// listHosts formats the first hosts for an error message.
func listHosts(hosts []Host, format func(Host) string) string {
	var b strings.Builder
	for i, h := range hosts {
		if i == maxListedHosts {
			fmt.Fprintf(&b, ", and %d more hosts", len(hosts)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(format(h))
	}
	return b.String()
}
