//go:build race

package artifact

// raceEnabled shrinks the largest streamed tests: the race detector makes
// a 1 GiB payload take minutes.
const raceEnabled = true
