"""The network namespace the packaging tests attach the example units in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoNetns:
    """A namespace holding a veth pair named as the example units want (bpfu-demo0, bpfu-demo1)."""

    name: str

    def enter(self) -> list[str]:
        # nsenter, not `ip netns exec`, which remounts /sys and so hides bpffs.
        return ["nsenter", f"--net=/run/netns/{self.name}"]
