//go:build race

package examples_test

// raceEnabled builds the test's programs with the race detector too.
const raceEnabled = true
