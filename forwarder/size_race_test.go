//go:build race

package forwarder

// uploadSize is smaller under the race detector, which slows copying
// tenfold; the byte count and hash checks are the same.
const uploadSize = 32 << 20

// checkAllocs is off under the race detector: it makes sync.Pool drop
// buffers at random, so allocations grow with the body even though nothing
// holds it whole.
const checkAllocs = false
