//go:build !unix

package index

import "time"

// cpuTime is unknown here; BenchANN then reports no CPU-time figures.
func cpuTime() time.Duration { return 0 }
