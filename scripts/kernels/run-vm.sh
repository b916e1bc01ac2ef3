#!/usr/bin/env bash
# Boots one kernel of the cache (fetch.sh) under qemu TCG with virtme-ng and runs guest.sh in it,
# under a timeout. Results go to OUT (see guest.sh), plus console.log (vng's own output), vm.rc and
# wall (seconds, boot included). One VM at a time: two side by side on 2 cores are each 1.5-2.5x slower.
# Usage: run-vm.sh NAME OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
name=$1
out=$(mkdir -p "$2" && cd "$2" && pwd)
cache=${BPFUNITS_KERNEL_CACHE:-/var/lib/bpfunits/kernels}
# Seconds. Measured under TCG: boot 10-15 s; the subset 4.4-4.8 min on 6.1 and 6.12, 4-6.7 min on
# 5.10; the demo 3.3-3.8 min on 6.1 and 6.12, 3.9-7.3 min on 5.10 (slowest with other work on the
# host), where every Python process spends 25-30 s importing (9p reads under TCG). CI's machine ran
# 5.10's subset in 401 s and its demo past 450 s: the budgets keep a third in hand over that. A hung
# kernel costs at most the VM timeout; the three kernels typically take 25-27 min together, inside
# CI's hour with the host suite.
vm_timeout=${BPFUNITS_VM_TIMEOUT:-1320}
pytest_timeout=${BPFUNITS_VM_PYTEST_TIMEOUT:-600}
demo_timeout=${BPFUNITS_VM_DEMO_TIMEOUT:-600}
# Under TCG a Python process starts 10-30x slower than natively (and a bpfunits CLI call with it): every
# timeout in the tests stretches by this (tests/timing.py). Fixed settling sleeps stretch too, so it is
# no bigger than needed.
factor=${BPFUNITS_VM_TIME_FACTOR:-10}

# vng decides where the modules are from the image's real path (…/root/boot/vmlinuz-V → …/root/lib/modules/V).
image=$(readlink -f "$cache/$name/vmlinuz")
rm -rf "$out" && mkdir -p "$out"
cp "$here/guest.sh" "$out/guest.sh"
cp "$cache/$name/package" "$out/package"
# `bpfunits probe` exists once the feature probes are in; asked here, where a CLI call is cheap.
probe=no
"$repo/.venv/bin/bpfunits" probe --help >/dev/null 2>&1 && probe=yes

# The guest cannot write bytecode (read-only root), and compiling bpfunits and the tests from source in
# every Python process costs minutes under TCG: compile here, where it takes a second (only what changed).
"$repo/.venv/bin/python" -m compileall -q -j 0 "$repo/bpfunits" "$repo/tests" "$repo/scripts" >/dev/null

# The guest imports only the test modules that hold `matrix` tests: collecting the whole suite there
# (every module imported, under TCG) cost over a minute.
(cd "$repo" && .venv/bin/python -m pytest --collect-only -q -m matrix -p no:cacheprovider) \
  | sed -n 's/::.*//p' | sort -u >"$out/testfiles"

echo "run-vm: $name ($(cat "$out/package")), results in $out"
start=$(date +%s)
rc=0
# vng runs virtme-run from PATH; stdin from /dev/null: nothing interactive reaches the guest.
PATH=$repo/.venv/bin:$PATH timeout --kill-after=30 "$vm_timeout" \
  vng --run "$image" --disable-kvm --qemu-opts='-cpu qemu64' --cpus 2 --memory 2G --rwdir "$out" \
  --exec "bash $out/guest.sh $out $repo $factor $pytest_timeout $demo_timeout $probe" \
  >"$out/console.log" 2>&1 </dev/null || rc=$?
echo "$rc" >"$out/vm.rc"
echo $(( $(date +%s) - start )) >"$out/wall"
echo "run-vm: $name done in $(cat "$out/wall") s (vng exit $rc)"
