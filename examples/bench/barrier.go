package main

import "github.com/gorun-hpc/gorun/runtime/mpi"

// barrier returns once every rank of c has called it. The point-to-point
// tests use it so that they depend on package mpi alone (the collective tests
// use collectives.Barrier, as they measure package collectives): a
// dissemination barrier built from Sendrecv on c's collective context (its
// messages never match the benchmark's own receives): in round k each rank
// signals rank+2^k and waits for rank-2^k, so after ceil(log2 n) rounds every
// rank has heard, directly or not, from every other.
func barrier(c *mpi.Comm) error {
	cc := c.Collective()
	rank, n := cc.Rank(), cc.Size()
	var none []byte
	for round, dist := 0, 1; dist < n; round, dist = round+1, dist*2 {
		to, from := (rank+dist)%n, (rank-dist+n)%n
		if _, err := mpi.Sendrecv(cc, none, to, round, none, from, round); err != nil {
			return err
		}
	}
	return nil
}
