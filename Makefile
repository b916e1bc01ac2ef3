# `make test` is the one test command: on a fresh Debian machine, as root, it
# installs what the suite needs (host packages, kernel headers for bcc, bpffs,
# a virtual environment), runs the whole suite on this kernel (`make test-host`),
# then the kernel matrix in VMs (`make test-kernels`), and fails if either failed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Results of both, per kernel; the matrix's summary table is printed from here.
RESULTS := build/test-kernels

.PHONY: test test-host test-kernels host venv bpf clean lint

# Lint first: a finding fails `make test` before anything boots.
test: host venv bpf
	@$(MAKE) --no-print-directory lint
	@rc=0; $(MAKE) --no-print-directory test-host || rc=1; $(MAKE) --no-print-directory test-kernels || rc=1; exit $$rc

# The whole suite on this machine's kernel. Its junit and probe become the host's row of the table.
test-host: host venv bpf
	rm -rf $(RESULTS)/host && mkdir -p $(RESULTS)/host && uname -r > $(RESULTS)/host/kernel
	-$(VENV)/bin/bpfunits probe --json > $(RESULTS)/host/probe.json 2>/dev/null
	$(PY) -m pytest -q --junitxml=$(RESULTS)/host/junit.xml

# Debian's kernels of scripts/kernels/kernels.list, each booted under qemu TCG (virtme-ng), one at a
# time, running the `matrix` subset of the suite and the demo; ends with the summary table.
test-kernels: host venv bpf
	bash scripts/kernels/matrix.sh $(RESULTS)

# ruff (rules and their few exceptions in pyproject.toml) on the code, its tests and the Salt formula's
# states, mypy on the package.
lint: venv
	$(VENV)/bin/ruff check bpfunits tests benchmarks scripts packaging/salt/_states
	$(VENV)/bin/mypy

host:
	bash scripts/setup-host.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(PYTHON) $(VENV)
	touch $@

bpf:
	$(MAKE) -C bpf

clean:
	$(MAKE) -C bpf clean
	rm -rf $(VENV)

# `make demo`: the example chain on a demo veth pair in namespaces of its own, with traffic,
# status, a live reorder through the daemon, and removal of everything it created.
.PHONY: demo
demo: host venv bpf
	$(PY) scripts/demo.py

# Per-program cost on real traffic through a veth pair against tcx, cls_bpf and tail calls; root,
# about 3-4 minutes (builds the C sender with `make -C benchmarks`).
.PHONY: bench-datapath
bench-datapath: venv bpf
	$(MAKE) -C benchmarks
	$(PY) benchmarks/datapath_traffic.py

# Control-plane figures (edit latency, cold reconcile, idle daemon); root, ~2.5 minutes.
.PHONY: bench-control-plane
bench-control-plane: venv bpf
	$(PY) benchmarks/control_plane.py

# `make wheel`: dist/bpfunits-<version>-py3-none-any.whl. `make deb`: dist/bpfunits_<version>_<arch>.deb
# (scripts/build-deb.sh; pip fetches the dependencies it bundles at the venv's versions).
.PHONY: wheel deb image
wheel: venv
	$(PY) -m pip wheel . -w dist --no-deps -q
deb: venv bpf
	bash scripts/build-deb.sh $(PY)
# `make image`: the DaemonSet's container image, localhost/bpfunits:<version> in the podman store and
# dist/bpfunits-<version>.oci.tar (scripts/build-image.sh: a Debian 12 base by mmdebstrap, cached,
# and the .deb on top).
image: host venv bpf
	bash scripts/build-image.sh
# `make image-bcc`: localhost/bpfunits:<version>-bcc, the same with bcc for units with Source=.
.PHONY: image-bcc
image-bcc: host venv bpf
	bash scripts/build-image.sh --bcc
