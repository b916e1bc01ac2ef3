#!/usr/bin/env bash
# `make test-kernels`: fetches the kernels of kernels.list (cached), boots each in turn (run-vm.sh, one
# VM at a time), and prints the summary table (summary.py), with the host's row if `make test-host`
# left one in RESULTS. Exits non-zero if any kernel failed.
# Usage: matrix.sh RESULTS
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
results=$1
bash "$here/fetch.sh"
while read -r name _; do
  case $name in ''|'#'*) continue ;; esac
  bash "$here/run-vm.sh" "$name" "$results/$name" || echo "matrix: $name: run-vm.sh failed"
done < "$here/kernels.list"
python3 "$here/summary.py" "$results" "$here/kernels.list"
