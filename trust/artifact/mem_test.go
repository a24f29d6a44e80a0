package artifact

import (
	"context"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memUse is what one streamed verification cost in memory.
type memUse struct {
	peakHeap   uint64 // highest sampled live+unswept heap objects
	totalAlloc uint64 // bytes allocated during the run (generator included)
}

// verifyStreamed verifies a generated gzip Artifact with a payload of size
// bytes, written through a pipe so it never exists in memory or on disk.
func verifyStreamed(t *testing.T, size int64) memUse {
	t.Helper()
	ec, _ := ecKeys(t)
	a := genArtifact(ec.priv, "gzip", 1, size, true)
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pw.CloseWithError(a.Write(pw))
	}()
	t.Cleanup(wg.Wait)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var max uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			max = maxU(max, s[0].Value.Uint64())
			select {
			case <-stop:
				peak <- max
				return
			case <-tick.C:
			}
		}
	}()
	rep, err := Verify(context.Background(), pr, Options{Keys: []PublicKey{ec.pub}})
	close(stop)
	p := <-peak
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.Equal(t, size, rep.Payloads[0].Files[0].Size)
	return memUse{peakHeap: p, totalAlloc: after.TotalAlloc - before.TotalAlloc}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestConstantMemory verifies a 10 MiB and a 1 GiB payload (100 MiB with
// -short, -race or on 32-bit targets, where 1 GiB takes minutes) and requires the same memory for both: the peak heap may not
// grow by more than 2 MiB, and the bytes allocated may not grow by more
// than 4 MiB, i.e. nothing is allocated per payload byte.
func TestConstantMemory(t *testing.T) {
	large := int64(1 << 30)
	if testing.Short() || raceEnabled || strconv.IntSize == 32 {
		large = 100 << 20
	}
	small := verifyStreamed(t, 10<<20)
	big := verifyStreamed(t, large)
	t.Logf("10 MiB: peak heap %.1f MiB, allocated %.1f MiB", mib(small.peakHeap), mib(small.totalAlloc))
	t.Logf("%d MiB: peak heap %.1f MiB, allocated %.1f MiB", large>>20, mib(big.peakHeap), mib(big.totalAlloc))
	assert.LessOrEqual(t, big.peakHeap, small.peakHeap+2<<20, "peak heap grew with the payload")
	assert.LessOrEqual(t, big.totalAlloc, small.totalAlloc+4<<20, "allocation grew with the payload")
	assert.Less(t, big.peakHeap, uint64(32<<20))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
