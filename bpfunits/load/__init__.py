"""Unit programs into the kernel: ELF objects through the libbpf worker, bcc sources, their maps and pins."""
