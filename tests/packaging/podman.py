"""Running the image with podman as packaging/kubernetes/daemonset.yaml runs it in a pod."""

from __future__ import annotations

import json
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DAEMONSET = next(d for d in yaml.safe_load_all((ROOT / "packaging" / "kubernetes" / "daemonset.yaml").read_text())
                 if d and d["kind"] == "DaemonSet")
POD = DAEMONSET["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
# runc: crun refuses cgroup v1 hosts with a v2 hierarchy beside ("hybrid"), as CI machines have.
PODMAN = ["podman", "--runtime", "runc"]


def rlimits() -> list[str]:
    """podman's default rlimits exceed the hard limits where the runtime lacks CAP_SYS_RESOURCE
    (as here); a kubelet's runtime passes none. These are below any machine's hard limits."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 16384)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


@dataclass(frozen=True)
class Pod:
    """The DaemonSet's pod on this machine: its volumes by name on host folders, its network
    namespace (for hostNetwork) one the test made."""

    image: str
    netns: str
    volumes: dict[str, Path]
    # More `podman run` options: the -bcc image's kernel header mounts.
    extra: tuple[str, ...] = ()

    def options(self) -> list[str]:
        """`podman run` options for the DaemonSet's container: its capabilities and no others,
        its security settings, its volume mounts."""
        security = CONTAINER["securityContext"]
        assert not security["privileged"]
        options = [*rlimits(), "--network", f"ns:/run/netns/{self.netns}",
                   "--cap-drop", "all", "--cap-add", ",".join(security["capabilities"]["add"]),
                   "--user", str(security["runAsUser"])]
        if not security["allowPrivilegeEscalation"]:
            options += ["--security-opt", "no-new-privileges"]
        for mount in CONTAINER["volumeMounts"]:
            flags = ["ro" if mount.get("readOnly") else "rw"]
            if mount.get("mountPropagation") == "HostToContainer":
                flags.append("rslave")
            options += ["--volume", f"{self.volumes[mount['name']]}:{mount['mountPath']}:{','.join(flags)}"]
        return [*options, *self.extra]

    def start(self, name: str) -> None:
        """`podman run -d` the daemon, with the DaemonSet's arguments to the image's entrypoint."""
        subprocess.run([*PODMAN, "run", "-d", "--name", name, *self.options(), self.image, *CONTAINER["args"]],
                       check=True, capture_output=True, text=True)

    def bpfunits(self, *args: str) -> str:
        """`bpfunits ARGS` in a one-off container of the same pod, with the DaemonSet's --config."""
        config = next(a for a in CONTAINER["args"] if a.startswith("--config="))
        run = subprocess.run([*PODMAN, "run", "--rm", *self.options(), "--entrypoint", "/usr/bin/bpfunits",
                              self.image, *args, config], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def chains(self) -> dict[tuple[str, str], tuple[int, list[str]]]:
        """(interface, hook) -> (program id, the active units in order), per `bpfunits status`."""
        hooks = json.loads(self.bpfunits("status", "--json"))["hooks"]
        return {(h["interface"], h["hook"]): (h["program"]["id"], [u["unit"] for u in h["units"] if u["state"] == "active"])
                for h in hooks if h["program"]}


def logs(name: str) -> list[dict]:
    """The container's JSON log lines."""
    run = subprocess.run([*PODMAN, "logs", name], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in (run.stdout + run.stderr).splitlines() if line.startswith("{")]


def inspect(kind: str, name: str) -> dict:
    """`podman image inspect` or `podman container inspect`."""
    (found,) = json.loads(subprocess.run([*PODMAN, kind, "inspect", name], capture_output=True, text=True,
                                         check=True).stdout)
    return found
