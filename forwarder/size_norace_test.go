//go:build !race

package forwarder

// uploadSize is the body of the large-upload test.
const uploadSize = 256 << 20

// checkAllocs enables the allocation bound of the large-upload test.
const checkAllocs = true
