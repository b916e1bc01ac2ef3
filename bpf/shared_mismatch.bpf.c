// shared_counter.bpf.c with a `packets` map of 4 slots: another shape than counter.bpf.o's.
#define PACKETS_SLOTS 4
#include "shared_counter.bpf.c"
