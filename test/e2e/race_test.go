//go:build race

package e2e

// raceEnabled builds the daemon under test with the race detector when the
// tests themselves run with -race, so races in the real binary fail tests.
const raceEnabled = true
