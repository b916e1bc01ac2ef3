#!/usr/bin/env bash
# Runs in the VM of `datapath_traffic.py --vm KERNEL` (virtme-ng: the host's root file system,
# read-only; /tmp and /run writable): readies the guest kernel, then runs the benchmark with --libxdp.
# Everything goes into OUT, the VM's --rwdir (vng's console relay may drop guest output).
# Usage: vm-guest.sh OUT REPO PYTHON [benchmark arguments...]
set -u
out=$1 repo=$2 python=$3
shift 3
exec >"$out/guest.log" 2>&1
modprobe veth || echo "guest: modprobe veth failed"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
export PYTHONDONTWRITEBYTECODE=1
cd "$repo" || exit 1
"$python" benchmarks/datapath_traffic.py --libxdp "$@" >"$out/bench.txt" 2>"$out/bench.err"
echo $? >"$out/bench.rc"
sync
