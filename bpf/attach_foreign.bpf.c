// A program "another tool" attaches with ip/tc in tests: it counts test frames into its own
// map, so a test can see it kept running, and lets every packet go on. One program per section,
// so `ip ... sec xdp` and `tc ... sec tc` find exactly one.
#define COUNTS_MAP foreign_counts
#include "test_count.h"

XDP_COUNTER(foreign_xdp)
TC_COUNTER(foreign_tc)

char LICENSE[] SEC("license") = "GPL";
