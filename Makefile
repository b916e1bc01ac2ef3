# `make test` is the one test command: on a fresh Debian machine, as root, it
# installs what the suite needs (host packages, kernel headers for bcc, bpffs,
# a virtual environment) and runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test host venv bpf clean

test: host venv bpf
	$(PY) -m pytest -q

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

# Control-plane figures (edit latency, cold reconcile, idle daemon); root, ~2.5 minutes.
.PHONY: bench-control-plane
bench-control-plane: venv bpf
	$(PY) benchmarks/control_plane.py

# `make wheel`: dist/bpfunits-<version>-py3-none-any.whl. `make deb`: dist/bpfunits_<version>_<arch>.deb
# (scripts/build-deb.sh; pip fetches the dependencies it bundles at the venv's versions).
.PHONY: wheel deb
wheel: venv
	$(PY) -m pip wheel . -w dist --no-deps -q
deb: venv bpf
	bash scripts/build-deb.sh $(PY)
