#!/usr/bin/env bash
# Runs inside one matrix VM (virtme-ng: the host's root file system, read-only; /tmp and /run writable):
# readies the guest kernel for bpfunits, then runs the kernel smoke subset of the suite (`-m matrix`)
# and the demo. Everything goes into OUT, the VM's --rwdir shared with the host, because vng's console
# relay may drop guest output:
#   guest.log        this script's own output       times        uptime at each step (boot = first line)
#   kernel           uname -r                       probe.json   `bpfunits probe --json`, when it exists
#   junit.xml        the pytest results             pytest.log   pytest's output, pytest.rc its status
#   demo.log         scripts/demo.py's output       demo.rc      its status
# The runner copies this script into OUT before each run (bash reads a script while running it).
# Usage: guest.sh OUT REPO TIME_FACTOR PYTEST_TIMEOUT DEMO_TIMEOUT PROBE(yes|no)   (OUT/testfiles: what to collect)
set -uo pipefail  # no -e: a failing step is recorded and the next one still runs
out=$1 repo=$2 factor=$3 pytest_timeout=$4 demo_timeout=$5 probe=$6
exec >"$out/guest.log" 2>&1
stamp() { echo "$1 $(cut -d' ' -f1 /proc/uptime)" >>"$out/times"; }
stamp booted
uname -r >"$out/kernel"

# veth pairs, clsact (in sch_ingress) and cls_bpf are modules in Debian's kernels.
modprobe -a veth sch_ingress cls_bpf || echo "guest: modprobe failed"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
# The daemons the tests and the demo start serve their metrics on 127.0.0.1.
ip link set lo up || echo "guest: lo not up"

# The repository and its .venv are read-only here: no bytecode, no pytest cache, hypothesis in /tmp.
export PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis
export BPFUNITS_TEST_TIME_FACTOR=$factor
export PATH=$repo/.venv/bin:$PATH
cd "$repo" || exit 1

# The probe (one CLI call: 20-50 s here) runs beside pytest's start-up, on the second vCPU.
if [ "$probe" = yes ]; then
  timeout 300 bpfunits probe --json >"$out/probe.json" 2>"$out/probe.err" &
fi

# SIGINT on timeout: pytest then still writes the junit file for the tests it ran, if its teardown
# finishes in time; -v leaves one line per test in pytest.log for when it does not (summary.py reads it).
timeout --signal=INT --kill-after=60 "$pytest_timeout" python -m pytest -m matrix -p no:cacheprovider \
  --hypothesis-profile=matrix -v -rfEs --junitxml="$out/junit.xml" $(cat "$out/testfiles") >"$out/pytest.log" 2>&1
echo $? >"$out/pytest.rc"
stamp tested
wait

# SIGINT on timeout: the demo then cleans up as on Ctrl-C.
timeout --signal=INT --kill-after=20 "$demo_timeout" python scripts/demo.py >"$out/demo.log" 2>&1
echo $? >"$out/demo.rc"
stamp demoed

# Anything a test or the demo left behind shows here (the VM is thrown away either way).
{ ip netns list; ip -br link; ls -R /sys/fs/bpf; } >"$out/leftovers" 2>&1
sync
