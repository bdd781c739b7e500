package mpi

import (
	"net"
	"strings"
	"testing"
)

func TestListenAddr(t *testing.T) {
	got, err := listenAddr("127.0.0.1:4000", "")
	if err != nil || got != "127.0.0.1:0" {
		t.Errorf("listenAddr(loopback launcher) = %q, %v; want 127.0.0.1:0", got, err)
	}
	got, err = listenAddr("", "127.0.0.0/8")
	if err != nil || got != "127.0.0.1:0" {
		t.Errorf("listenAddr(GORUN_NET=127.0.0.0/8) = %q, %v; want 127.0.0.1:0", got, err)
	}
	if _, err := listenAddr("", "203.0.113.254/32"); err == nil || !strings.Contains(err.Error(), "203.0.113.254/32") {
		t.Errorf("a network no interface is in: %v; want an error naming it", err)
	}
	if _, err := listenAddr("", "not-a-net"); err == nil || !strings.Contains(err.Error(), "not-a-net") {
		t.Errorf("a malformed GORUN_NET: %v; want an error naming it", err)
	}
	if _, _, err := net.SplitHostPort(got); err != nil {
		t.Error(err)
	}
}
