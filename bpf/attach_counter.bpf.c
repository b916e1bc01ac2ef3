// Two counting programs per hook type, for attach/observe/swap tests: each counts test frames
// in slot 0 of `counts` and lets every packet go on. Each load of a program gets its own map,
// so two loaded programs count apart.
#define COUNTS_MAP counts
#include "test_count.h"

XDP_COUNTER(xdp_count_a)
XDP_COUNTER(xdp_count_b)
TC_COUNTER(tc_count_a)
TC_COUNTER(tc_count_b)

char LICENSE[] SEC("license") = "GPL";
