// Package sched gives the CPU to other processes without going through the
// Go scheduler.
package sched
