"""bpfunits: declarative chains of independent eBPF programs on XDP and tc hooks."""

__version__ = "0.1.0"
