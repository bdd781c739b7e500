package launcher_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/launcher"
)

// H is a short constructor for expected hosts.
func H(name string, slots, maxSlots, port, line int) launcher.Host {
	return launcher.Host{Name: name, Slots: slots, MaxSlots: maxSlots, Port: port, Line: line}
}

func TestParseHostfile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []launcher.Host
	}{
		{"bare", "node01\n", []launcher.Host{H("node01", 1, 0, 0, 1)}},
		{"no final newline", "node01", []launcher.Host{H("node01", 1, 0, 0, 1)}},
		{"openmpi", "node01 slots=4 max_slots=8 port=7071\n", []launcher.Host{H("node01", 4, 8, 7071, 1)}},
		{"openmpi max-slots alias", "node01 slots=4 max-slots=8\n", []launcher.Host{H("node01", 4, 8, 0, 1)}},
		{"openmpi key order", "node01 port=7071 max_slots=8 slots=4", []launcher.Host{H("node01", 4, 8, 7071, 1)}},
		{"hydra", "node01:4\nnode02:2\n", []launcher.Host{H("node01", 4, 0, 0, 1), H("node02", 2, 0, 0, 2)}},
		{"host syntax with port", "node01:4@7071\nnode02@7072\n", []launcher.Host{H("node01", 4, 0, 7071, 1), H("node02", 1, 0, 7072, 2)}},
		{"hydra plus keys", "node01:4 max_slots=6 port=7000", []launcher.Host{H("node01", 4, 6, 7000, 1)}},
		{"mixed, comments, blanks", `
# cluster
  node01 slots=2   # trailing comment
	node02:3#no space before the comment

   # indented comment
node03
`, []launcher.Host{H("node01", 2, 0, 0, 3), H("node02", 3, 0, 0, 4), H("node03", 1, 0, 0, 7)}},
		{"crlf and bom", "\uFEFFnode01 slots=2\r\nnode02\r\n", []launcher.Host{H("node01", 2, 0, 0, 1), H("node02", 1, 0, 0, 2)}},
		{"spaces around =", "node01 slots = 4 max_slots= 5 port =7071", []launcher.Host{H("node01", 4, 5, 7071, 1)}},
		{"repeated host adds slots", "a:2\nb\na slots=3\nA\n", []launcher.Host{H("a", 6, 0, 0, 1), H("b", 1, 0, 0, 2)}},
		{"repeat keeps max_slots", "a slots=2 max_slots=8\na:2\na max_slots=8\n", []launcher.Host{H("a", 5, 8, 0, 1)}},
		{"repeat sets max_slots later", "a:2\na max_slots=4\n", []launcher.Host{H("a", 3, 4, 0, 1)}},
		{"explicit default port merges", "a\na port=7070\n", []launcher.Host{H("a", 2, 0, 0, 1)}},
		{"other port is another host", "a\na port=7071\na@7071\n", []launcher.Host{H("a", 1, 0, 0, 1), H("a", 2, 0, 7071, 2)}},
		{"ipv4", "10.0.0.7:2\n192.168.1.1 slots=3\n", []launcher.Host{H("10.0.0.7", 2, 0, 0, 1), H("192.168.1.1", 3, 0, 0, 2)}},
		{"ipv6", "[::1]:4\n[fe80::1%eth0] slots=2 port=7071\n[0:0::1]\n", []launcher.Host{H("::1", 5, 0, 0, 1), H("fe80::1%eth0", 2, 0, 7071, 2)}},
		{"names", "node-01.example.com\nmy_host\n_x\n", []launcher.Host{H("node-01.example.com", 1, 0, 0, 1), H("my_host", 1, 0, 0, 2), H("_x", 1, 0, 0, 3)}},
		{"max_slots equal slots", "a slots=3 max_slots=3", []launcher.Host{H("a", 3, 3, 0, 1)}},
		{"max_slots alone", "a max_slots=2", []launcher.Host{H("a", 1, 2, 0, 1)}},
		{"large values", "a slots=1048576 port=65535\nb port=1", []launcher.Host{H("a", 1048576, 0, 65535, 1), H("b", 1, 0, 1, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := launcher.ParseHostfile(strings.NewReader(tt.in), "hosts.txt")
			if err != nil {
				t.Fatalf("ParseHostfile(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseHostfile(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseHostfileErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the message, after "launcher: "
	}{
		{"slots not a number", "node01\nnode02\nnode03 slots=x\n",
			[]string{`hosts.txt:3: "slots=x": slots must be a positive number (write node03 slots=4 or node03:4)`}},
		{"slots zero", "a slots=0", []string{"hosts.txt:1:", `"slots=0"`, "positive number"}},
		{"slots negative", "a slots=-1", []string{"hosts.txt:1:", "positive number"}},
		{"slots empty", "a slots=", []string{"hosts.txt:1:", `"slots="`, "positive number"}},
		{"slots too big", "a slots=1048577", []string{"hosts.txt:1:", "at most 1048576"}},
		{"slots huge", "a slots=99999999999999999999999", []string{"hosts.txt:1:", "at most 1048576"}},
		{"hydra slots zero", "a:0", []string{"hosts.txt:1:", `"a:0"`, "slots must be a positive number (write a slots=4 or a:4)"}},
		{"hydra slots junk", "\n\na:four", []string{"hosts.txt:3:", `"a:four"`, "positive number"}},
		{"hydra slots empty", "a:", []string{"hosts.txt:1:", "positive number"}},
		{"max_slots below slots", "a slots=4 max_slots=2", []string{"hosts.txt:1:", `"max_slots=2": max_slots=2 is less than slots=4`}},
		{"max_slots below default slot", "a max_slots=0", []string{"hosts.txt:1:", "max_slots must be a positive number"}},
		{"max_slots differs", "a max_slots=4\nb\na max_slots=5", []string{"hosts.txt:3:", "max_slots=5 differs from max_slots=4 on line 1"}},
		{"repeat exceeds max_slots", "a slots=2 max_slots=3\na slots=2", []string{"hosts.txt:2:", "slots add up to 4, more than max_slots=3"}},
		{"repeat exceeds slot limit", "a slots=1048576\na", []string{"hosts.txt:2:", "more than the limit of 1048576"}},
		{"unknown key", "a cpus=4", []string{"hosts.txt:1:", `"cpus=4": unknown key "cpus" (accepted: slots=N, max_slots=N, port=N)`}},
		{"key case", "a Slots=4", []string{"hosts.txt:1:", `unknown key "Slots"`}},
		{"not key=value", "a 4", []string{"hosts.txt:1:", `"4": expected key=value`}},
		{"two hosts on a line", "a b", []string{"hosts.txt:1:", `"b": expected key=value`, "one host per line"}},
		{"slots twice", "a slots=2 slots=3", []string{"hosts.txt:1:", "slots given twice"}},
		{"slots both syntaxes", "a:2 slots=3", []string{"hosts.txt:1:", "slots given twice", "a slots=N or a:N, not both"}},
		{"port both syntaxes", "a@7071 port=7072", []string{"hosts.txt:1:", "port given twice", "a port=N or a@N"}},
		{"port zero", "a port=0", []string{"hosts.txt:1:", "port must be a number from 1 to 65535 (write a port=7071 or a@7071)"}},
		{"port too big", "a port=65536", []string{"hosts.txt:1:", "from 1 to 65535"}},
		{"port junk", "a port=http", []string{"hosts.txt:1:", "from 1 to 65535"}},
		{"port after @ junk", "a@b", []string{"hosts.txt:1:", `"a@b": "b" after '@' is not a port`, "(write node01:4@7071); user@host is not supported"}},
		{"two @", "a@1@2", []string{"hosts.txt:1:", "more than one '@'"}},
		{"port before slots", "a@7071:4", []string{"hosts.txt:1:", "after '@' is not a port"}},
		{"junk in name", "node01!", []string{"hosts.txt:1:", `invalid character "!" in host name`, "letters, digits"}},
		{"non-ascii name", "nöde", []string{"hosts.txt:1:", `invalid character "ö"`}},
		{"invalid utf8", "a\xff", []string{"hosts.txt:1:", `invalid character "\xff"`}},
		{"nul byte", "a\x00b", []string{"hosts.txt:1:", `invalid character "\x00"`}},
		{"leading dash", "-H", []string{"hosts.txt:1:", `must not start with "-"`}},
		{"leading dot", ".a", []string{"hosts.txt:1:", `must not start with "."`}},
		{"missing name", ":4", []string{"hosts.txt:1:", "missing host name"}},
		{"equals in name", "a=4", []string{"hosts.txt:1:", `invalid character "="`}},
		{"name too long", strings.Repeat("a", 254), []string{"hosts.txt:1:", "longer than 253"}},
		{"bad ipv4", "10.0.0.256", []string{"hosts.txt:1:", "not a valid IPv4 address"}},
		{"short ipv4", "10.0.7:2", []string{"hosts.txt:1:", "not a valid IPv4 address"}},
		{"bare ipv6", "fe80::1", []string{"hosts.txt:1:", "IPv6 address must be written in brackets"}},
		{"bare ipv6 with slots", "::1:4", []string{"hosts.txt:1:", "brackets"}},
		{"bad ipv6", "[fe80::g]:4", []string{"hosts.txt:1:", `"fe80::g" is not an IPv6 address`}},
		{"ipv4 in brackets", "[10.0.0.1]", []string{"hosts.txt:1:", "brackets are only for IPv6"}},
		{"unclosed bracket", "[::1", []string{"hosts.txt:1:", "missing ']'"}},
		{"junk after bracket", "[::1]x", []string{"hosts.txt:1:", `unexpected "x" after ']'`}},
		{"bad zone", "[fe80::1%e\x01]", []string{"hosts.txt:1:", "in the zone"}},
		{"no hosts", "# only a comment\n\n", []string{"hosts.txt: no hosts in the file"}},
		{"empty file", "", []string{"hosts.txt: no hosts"}},
		{"line too long", "a\n" + strings.Repeat(" ", 4097) + "\n", []string{"hosts.txt:2: line longer than 4096 bytes"}},
		{"line much too long", "a\nb\n" + strings.Repeat("x", 100000), []string{"hosts.txt:3: line longer than 4096 bytes"}},
		{"binary", "\x7fELF\x02\x01\x01\x00\x00\x00", []string{"hosts.txt:1:", "invalid character"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, err := launcher.ParseHostfile(strings.NewReader(tt.in), "hosts.txt")
			if err == nil {
				t.Fatalf("ParseHostfile(%q) = %+v, want an error", tt.in, hosts)
			}
			checkHostErr(t, err, tt.want)
		})
	}
}

// checkHostErr checks that err wraps ErrHostfile and ErrUsage and that its
// message starts with "launcher: " and contains every string of want.
func checkHostErr(t *testing.T, err error, want []string) {
	t.Helper()
	if !errors.Is(err, launcher.ErrHostfile) || !errors.Is(err, launcher.ErrUsage) {
		t.Errorf("error %q does not wrap ErrHostfile and ErrUsage", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "launcher: ") {
		t.Errorf("error %q does not start with \"launcher: \"", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
}

func TestParseHostfileLineLength(t *testing.T) {
	// A line of exactly 4096 bytes (comment padding) is accepted, with or
	// without "\r\n".
	for _, end := range []string{"\n", "\r\n", ""} {
		line := "a" + strings.Repeat(" ", 10) + "#" + strings.Repeat("c", 4096-12)
		if _, err := launcher.ParseHostfile(strings.NewReader(line+end), "h"); err != nil {
			t.Errorf("4096-byte line ending in %q: %v", end, err)
		}
		if _, err := launcher.ParseHostfile(strings.NewReader(line+"c"+end), "h"); err == nil || !strings.Contains(err.Error(), "h:1: line longer than 4096") {
			t.Errorf("4097-byte line ending in %q: got %v, want line too long", end, err)
		}
	}
}

func TestParseHostfileTooManyHosts(t *testing.T) {
	var b strings.Builder
	for i := range 65536 {
		fmt.Fprintf(&b, "h%d\n", i)
	}
	hosts, err := launcher.ParseHostfile(strings.NewReader(b.String()), "big")
	if err != nil || len(hosts) != 65536 {
		t.Fatalf("65536 hosts: got %d hosts, %v", len(hosts), err)
	}
	// Repeating a host does not count.
	b.WriteString("h0\nh65536\n")
	_, err = launcher.ParseHostfile(strings.NewReader(b.String()), "big")
	checkHostErr(t, err, []string{"big:65538:", "more than 65536 hosts"})
}

func TestParseHostfileDefaultName(t *testing.T) {
	_, err := launcher.ParseHostfile(strings.NewReader("a slots=x"), "")
	checkHostErr(t, err, []string{"launcher: hostfile:1:"})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestParseHostfileReadError(t *testing.T) {
	_, err := launcher.ParseHostfile(io.MultiReader(strings.NewReader("a\n"), failingReader{}), "h")
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, launcher.ErrHostfile) || !strings.Contains(err.Error(), "h") {
		t.Errorf("got %v, want a read error naming the file, without ErrHostfile", err)
	}
}

func TestParseHostfileExampleFile(t *testing.T) {
	f, err := os.Open("../hostfile.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hosts, err := launcher.ParseHostfile(f, "hostfile.example")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	total := 0
	for _, h := range hosts {
		names = append(names, h.Name)
		total += h.Slots
	}
	if got := strings.Join(names, " "); got != "node01 node02 node03 10.0.0.7" || total != 8 {
		t.Fatalf("hostfile.example: hosts %q with %d slots, want node01 node02 node03 10.0.0.7 with 8 (keep the file and its mapping comments in sync)", got, total)
	}
	// The mappings the file's comments describe.
	checkMap(t, hosts, 8, false, false, []int{0, 0, 0, 0, 1, 1, 2, 3})
	checkMap(t, hosts, 8, true, false, []int{0, 1, 2, 3, 0, 1, 0, 0})
	checkMap(t, hosts, 5, false, false, []int{0, 0, 0, 0, 1})
	checkMap(t, hosts, 10, false, true, []int{0, 0, 0, 0, 1, 1, 2, 3, 0, 1})
	if _, _, err := launcher.Map(hosts, 10, false, false); err == nil ||
		!strings.Contains(err.Error(), "10 ranks requested but the hosts have only 8 slots (node01:4, node02:2, node03:1@7071, 10.0.0.7:1)") {
		t.Errorf("-n 10: %v", err)
	}
}

func TestParseHosts(t *testing.T) {
	tests := []struct {
		in   string
		want []launcher.Host
	}{
		{"a", []launcher.Host{H("a", 1, 0, 0, 0)}},
		{"a:4,b:4,c", []launcher.Host{H("a", 4, 0, 0, 0), H("b", 4, 0, 0, 0), H("c", 1, 0, 0, 0)}},
		{"a,a", []launcher.Host{H("a", 2, 0, 0, 0)}},
		{"a:2,b,A:3", []launcher.Host{H("a", 5, 0, 0, 0), H("b", 1, 0, 0, 0)}},
		{"a:4@7071,a@7072,a:2", []launcher.Host{H("a", 4, 0, 7071, 0), H("a", 1, 0, 7072, 0), H("a", 2, 0, 0, 0)}},
		{"a@7070,a", []launcher.Host{H("a", 2, 0, 7070, 0)}},
		{" a:2 , b ", []launcher.Host{H("a", 2, 0, 0, 0), H("b", 1, 0, 0, 0)}},
		{"[::1]:4", []launcher.Host{H("::1", 4, 0, 0, 0)}},
		{"[::1],[0::1]:2@7070", []launcher.Host{H("::1", 3, 0, 0, 0)}},
		{"[fe80::1%eth0]:2@7071,10.0.0.1:3", []launcher.Host{H("fe80::1%eth0", 2, 0, 7071, 0), H("10.0.0.1", 3, 0, 0, 0)}},
		{"localhost:2@7070,localhost:2@7071", []launcher.Host{H("localhost", 2, 0, 7070, 0), H("localhost", 2, 0, 7071, 0)}},
	}
	for _, tt := range tests {
		got, err := launcher.ParseHosts(tt.in)
		if err != nil {
			t.Errorf("ParseHosts(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseHosts(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseHostsErrors(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{"launcher: --host: empty host list (write --host node01:4,node02:4)"}},
		{"  ", []string{"--host: empty host list"}},
		{"a,,b", []string{"--host item 2: empty host"}},
		{"a,", []string{"--host item 2: empty host"}},
		{"a:4,b:x", []string{`--host item 2: "b:x": slots must be a positive number (write b:4)`}},
		{"a:0", []string{"--host item 1:", "positive number"}},
		{"a:4@0", []string{"--host item 1:", "port must be a number from 1 to 65535 (write a:4@7071)"}},
		{"a@7071:4", []string{"--host item 1:", `"7071:4" after '@' is not a port`, "'@' gives the daemon port, 1..65535, after the slots (write node01:4@7071)"}},
		{"alice@node01", []string{"--host item 1:", "user@host is not supported"}},
		{"fe80::1", []string{"--host item 1:", "brackets"}},
		{"::1", []string{"--host item 1:", "brackets"}},
		{"a slots=4", []string{"--host item 1:", `invalid character " "`}},
		{"a;b", []string{"--host item 1:", `invalid character ";"`}},
		{"a#b", []string{"--host item 1:", `invalid character "#"`}},
		{"[::1", []string{"--host item 1:", "missing ']'"}},
		{"-n", []string{"--host item 1:", `must not start with "-"`}},
		{strings.Repeat("x", 300), []string{"--host item 1:", `..."`, "longer than 253"}},
		{"a:1048576,a", []string{"--host item 2:", "more than the limit"}},
	}
	for _, tt := range tests {
		hosts, err := launcher.ParseHosts(tt.in)
		if err == nil {
			t.Errorf("ParseHosts(%q) = %+v, want an error", tt.in, hosts)
			continue
		}
		checkHostErr(t, err, tt.want)
	}
}

func TestHostAddr(t *testing.T) {
	for _, tt := range []struct {
		h    launcher.Host
		want string
	}{
		{H("node01", 1, 0, 0, 0), "node01:7070"},
		{H("node01", 1, 0, 7071, 0), "node01:7071"},
		{H("::1", 1, 0, 0, 0), "[::1]:7070"},
		{H("fe80::1%eth0", 1, 0, 9, 0), "[fe80::1%eth0]:9"},
	} {
		if got := tt.h.Addr(); got != tt.want {
			t.Errorf("%+v.Addr() = %q, want %q", tt.h, got, tt.want)
		}
	}
}

// slots returns hosts named h0, h1, ... with the given slots.
func slots(n ...int) []launcher.Host {
	hosts := make([]launcher.Host, len(n))
	for i, s := range n {
		hosts[i] = launcher.Host{Name: "h" + strconv.Itoa(i), Slots: s}
	}
	return hosts
}

// checkMap checks that Map places rank r on host want[r], with local ranks
// numbered in rank order and local sizes that match.
func checkMap(t *testing.T, hosts []launcher.Host, n int, byNode, over bool, want []int) {
	t.Helper()
	pl, sizes, err := launcher.Map(hosts, n, byNode, over)
	if err != nil {
		t.Errorf("Map(%+v, %d, byNode=%v, oversubscribe=%v): %v", hosts, n, byNode, over, err)
		return
	}
	got := make([]int, len(pl))
	count := make([]int, len(hosts))
	for r, p := range pl {
		got[r] = p.Host
		if p.LocalRank != count[p.Host] {
			t.Errorf("rank %d: local rank %d, want %d", r, p.LocalRank, count[p.Host])
		}
		count[p.Host]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Map(%d ranks on slots %v, byNode=%v, oversubscribe=%v): hosts %v, want %v", n, slotsOf(hosts), byNode, over, got, want)
	}
	if !reflect.DeepEqual(sizes, count) {
		t.Errorf("local sizes %v, want %v", sizes, count)
	}
}

func slotsOf(hosts []launcher.Host) []string {
	var s []string
	for _, h := range hosts {
		s = append(s, fmt.Sprintf("%d/%d", h.Slots, h.MaxSlots))
	}
	return s
}

func TestMap(t *testing.T) {
	withMax := func(hosts []launcher.Host, max ...int) []launcher.Host {
		for i, m := range max {
			hosts[i].MaxSlots = m
		}
		return hosts
	}
	tests := []struct {
		name   string
		hosts  []launcher.Host
		n      int
		byNode bool
		over   bool
		want   []int
	}{
		{"one rank by slot", slots(4, 4), 1, false, false, []int{0}},
		{"one rank by node", slots(4, 4), 1, true, false, []int{0}},
		{"one host one slot", slots(1), 1, false, false, []int{0}},
		{"by slot full", slots(2, 2), 4, false, false, []int{0, 0, 1, 1}},
		{"by slot partial", slots(4, 4), 6, false, false, []int{0, 0, 0, 0, 1, 1}},
		{"by slot uneven", slots(1, 3, 2), 6, false, false, []int{0, 1, 1, 1, 2, 2}},
		{"by node full", slots(2, 2), 4, true, false, []int{0, 1, 0, 1}},
		{"by node partial", slots(4, 4, 4), 5, true, false, []int{0, 1, 2, 0, 1}},
		{"by node uneven", slots(1, 3, 2), 6, true, false, []int{0, 1, 2, 1, 2, 1}},
		{"by node skips full hosts", slots(3, 1, 1, 2), 7, true, false, []int{0, 1, 2, 3, 0, 3, 0}},
		{"oversubscribe by slot", slots(2, 2), 7, false, true, []int{0, 0, 1, 1, 0, 1, 0}},
		{"oversubscribe by node", slots(2, 1), 6, true, true, []int{0, 1, 0, 0, 1, 0}},
		{"oversubscribe one host", slots(1), 3, false, true, []int{0, 0, 0}},
		{"oversubscribe not needed", slots(2, 2), 3, false, true, []int{0, 0, 1}},
		{"oversubscribe respects max_slots", withMax(slots(2, 2, 1), 3, 0, 1), 9, false, true, []int{0, 0, 1, 1, 2, 0, 1, 1, 1}},
		{"oversubscribe up to all max_slots", withMax(slots(1, 2), 2, 4), 6, false, true, []int{0, 1, 1, 0, 1, 1}},
		{"max_slots ignored within slots", withMax(slots(2, 2), 2, 2), 4, true, false, []int{0, 1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMap(t, tt.hosts, tt.n, tt.byNode, tt.over, tt.want)
		})
	}
}

func TestMapErrors(t *testing.T) {
	tests := []struct {
		name  string
		hosts []launcher.Host
		n     int
		over  bool
		slots bool // wraps ErrNotEnoughSlots
		want  []string
	}{
		{"too many ranks", slots(4, 4), 10, false, true, []string{
			"launcher: 10 ranks requested but the hosts have only 8 slots (h0:4, h1:4)",
			"-n 8", "--oversubscribe", "slots=8", "node01:8"}},
		{"too many ranks, ports and ipv6", []launcher.Host{{Name: "::1", Slots: 2, Port: 7071}, {Name: "b", Slots: 1}}, 4, false, true, []string{
			"4 ranks requested but the hosts have only 3 slots ([::1]:2@7071, b:1)"}},
		{"long host list is cut", slots(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), 11, false, true, []string{
			"only 10 slots (h0:1, h1:1, h2:1, h3:1, h4:1, h5:1, h6:1, h7:1, and 2 more hosts)"}},
		{"beyond max_slots", []launcher.Host{{Name: "a", Slots: 2, MaxSlots: 3}, {Name: "b", Slots: 1, MaxSlots: 1}}, 5, true, true, []string{
			"5 ranks requested but the hosts' max_slots allow only 4 ranks even with --oversubscribe (a:2 max_slots=3, b:1 max_slots=1)", "-n 4"}},
		{"zero ranks", slots(1), 0, false, false, []string{"at least 1, got 0"}},
		{"negative ranks", slots(1), -3, true, false, []string{"at least 1, got -3"}},
		{"absurd ranks", slots(1), 1 << 30, true, false, []string{"too many ranks"}},
		{"no hosts", nil, 1, false, false, []string{"no hosts"}},
		{"zero slots", slots(1, 0), 1, false, false, []string{"host 1 (h1)", "slots must be at least 1"}},
		{"max below slots", []launcher.Host{{Name: "a", Slots: 2, MaxSlots: 1}}, 1, false, false, []string{"host 0 (a)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, byNode := range []bool{false, true} {
				pl, sizes, err := launcher.Map(tt.hosts, tt.n, byNode, tt.over)
				if err == nil {
					t.Fatalf("Map = %v, %v, want an error", pl, sizes)
				}
				if !errors.Is(err, launcher.ErrUsage) || errors.Is(err, launcher.ErrNotEnoughSlots) != tt.slots {
					t.Errorf("error %q: wraps ErrUsage %v, ErrNotEnoughSlots %v; want true, %v",
						err, errors.Is(err, launcher.ErrUsage), errors.Is(err, launcher.ErrNotEnoughSlots), tt.slots)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			}
		})
	}
}

func TestMapManyHosts(t *testing.T) {
	// One big host and many small ones: by node must not rescan full hosts.
	hosts := slots(1 << 20)
	for range 65535 {
		hosts = append(hosts, launcher.Host{Name: "x", Slots: 1})
	}
	n := 1<<20 + 65535
	pl, sizes, err := launcher.Map(hosts, n, true, false)
	if err != nil || len(pl) != n || sizes[0] != 1<<20 || sizes[1] != 1 {
		t.Fatalf("got %d placements, %v", len(pl), err)
	}
	if pl[65536].Host != 0 || pl[65536].LocalRank != 1 {
		t.Errorf("rank 65536 at %+v, want host 0 local rank 1", pl[65536])
	}
}

// formatHosts writes hosts back as a hostfile in Open MPI's syntax, one
// line per host.
func formatHosts(hosts []launcher.Host) string {
	var b strings.Builder
	for _, h := range hosts {
		name := h.Name
		if strings.Contains(name, ":") {
			name = "[" + name + "]"
		}
		fmt.Fprintf(&b, "%s slots=%d", name, h.Slots)
		if h.MaxSlots != 0 {
			fmt.Fprintf(&b, " max_slots=%d", h.MaxSlots)
		}
		if h.Port != 0 {
			fmt.Fprintf(&b, " port=%d", h.Port)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// formatHostList writes hosts back in --host syntax.
func formatHostList(hosts []launcher.Host) string {
	var items []string
	for _, h := range hosts {
		s := h.Name
		if strings.Contains(s, ":") {
			s = "[" + s + "]"
		}
		s += ":" + strconv.Itoa(h.Slots)
		if h.Port != 0 {
			s += "@" + strconv.Itoa(h.Port)
		}
		items = append(items, s)
	}
	return strings.Join(items, ",")
}

// checkHosts checks the invariants of an accepted host list.
func checkHosts(t *testing.T, hosts []launcher.Host, inFile bool) {
	t.Helper()
	if len(hosts) == 0 || len(hosts) > 65536 {
		t.Fatalf("%d hosts accepted", len(hosts))
	}
	prevLine := 0
	for _, h := range hosts {
		if h.Name == "" || h.Slots < 1 || h.Slots > 1<<20 || h.MaxSlots < 0 || (h.MaxSlots != 0 && h.MaxSlots < h.Slots) || h.Port < 0 || h.Port > 65535 {
			t.Fatalf("invalid host accepted: %+v", h)
		}
		if inFile && h.Line <= prevLine || !inFile && h.Line != 0 {
			t.Fatalf("host %+v: bad line (previous host's: %d)", h, prevLine)
		}
		prevLine = h.Line
	}
}

// withoutLines returns hosts with Line set to 0.
func withoutLines(hosts []launcher.Host) []launcher.Host {
	out := make([]launcher.Host, len(hosts))
	for i, h := range hosts {
		h.Line = 0
		out[i] = h
	}
	return out
}

func FuzzParseHostfile(f *testing.F) {
	for _, s := range []string{
		"node01 slots=4 max_slots=8 port=7071\n",
		"node01:4\nnode02\n# comment\n\n",
		"a:2\na slots=3 # again\nA@7071\n",
		"[::1]:4\n[fe80::1%eth0] slots=2\n10.0.0.7:2\n",
		"\uFEFFa slots = 4\r\nb max-slots=2\r\n",
		"a@1@2\n",
		"a slots=x\n",
		"# c\nnode01 slots=4 max_slots=8   # x\nnode02:2\nnode03 slots=1 port=7071\n10.0.0.7\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		hosts, err := launcher.ParseHostfile(strings.NewReader(in), "fuzz")
		if err != nil {
			if !errors.Is(err, launcher.ErrHostfile) || !strings.HasPrefix(err.Error(), "launcher: fuzz") {
				t.Fatalf("error %q: not ErrHostfile or not naming the file", err)
			}
			return
		}
		checkHosts(t, hosts, true)
		out := formatHosts(hosts)
		again, err := launcher.ParseHostfile(strings.NewReader(out), "fuzz")
		if err != nil {
			t.Fatalf("accepted %q, but not its formatted hosts %q: %v", in, out, err)
		}
		if !reflect.DeepEqual(withoutLines(again), withoutLines(hosts)) {
			t.Fatalf("%q parsed as %+v, formatted %q as %+v", in, hosts, out, again)
		}
		if _, _, err := launcher.Map(hosts, 1, false, false); err != nil {
			t.Fatalf("Map of accepted hosts %+v: %v", hosts, err)
		}
	})
}

func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{"a:4,b:4,c", "a,a", "[::1]:4@7071", "a@7071:4", "alice@node01", ",", "10.0.0.1:2,[fe80::1%lo]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		hosts, err := launcher.ParseHosts(in)
		if err != nil {
			if !errors.Is(err, launcher.ErrHostfile) || !strings.HasPrefix(err.Error(), "launcher: --host") {
				t.Fatalf("error %q: not ErrHostfile or not naming --host", err)
			}
			return
		}
		checkHosts(t, hosts, false)
		out := formatHostList(hosts)
		again, err := launcher.ParseHosts(out)
		if err != nil {
			t.Fatalf("accepted %q, but not its formatted hosts %q: %v", in, out, err)
		}
		if !reflect.DeepEqual(again, hosts) {
			t.Fatalf("%q parsed as %+v, formatted %q as %+v", in, hosts, out, again)
		}
		// The same hosts as a hostfile.
		fromFile, err := launcher.ParseHostfile(strings.NewReader(strings.ReplaceAll(out, ",", "\n")), "h")
		if err != nil || !reflect.DeepEqual(withoutLines(fromFile), hosts) {
			t.Fatalf("--host %q as a hostfile: %+v, %v", out, fromFile, err)
		}
	})
}

func ExampleMap() {
	const hostfile = `
# two machines, Open MPI and Hydra syntax
node01 slots=2
node02:2 # port 7070
`
	hosts, err := launcher.ParseHostfile(strings.NewReader(hostfile), "hosts.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, byNode := range []bool{false, true} {
		placements, localSizes, err := launcher.Map(hosts, 3, byNode, false)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("by node:", byNode, "local sizes:", localSizes)
		for rank, p := range placements {
			fmt.Printf("  rank %d on %s, local rank %d\n", rank, hosts[p.Host].Addr(), p.LocalRank)
		}
	}
	_, _, err = launcher.Map(hosts, 5, false, false)
	fmt.Println(err)
	// Output:
	// by node: false local sizes: [2 1]
	//   rank 0 on node01:7070, local rank 0
	//   rank 1 on node01:7070, local rank 1
	//   rank 2 on node02:7070, local rank 0
	// by node: true local sizes: [2 1]
	//   rank 0 on node01:7070, local rank 0
	//   rank 1 on node02:7070, local rank 0
	//   rank 2 on node01:7070, local rank 1
	// launcher: 5 ranks requested but the hosts have only 4 slots (node01:2, node02:2): run fewer ranks (-n 4), give the hosts more slots (node01 slots=8 in a hostfile, node01:8 with --host), or pass --oversubscribe to run more ranks than slots
}
