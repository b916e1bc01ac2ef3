#!/usr/bin/env bash
# Prepares a Debian machine (as root) for bpfunits' kernel work and tests:
# packages, kernel headers for bcc, and a mounted bpffs. Idempotent: every step
# checks before it acts, so a second run changes nothing.
set -euo pipefail

# graphviz: the tests render `bpfunits order --format dot`; ansible-core: the playbook syntax check;
# systemd: systemd-analyze verify for the service unit; dpkg-dev: building the Debian package;
# procps: sysctl, with which the tests quiet their namespaces; strace: the test that the daemon
# stays inside the service's system call filter; zsh: the zsh completion script's syntax check.
# qemu-system-x86, udev, kmod, busybox-static: `make test-kernels` boots other kernels with virtme-ng
# (qemu; udev and kmod inside the guest, busybox for its fallback init). xdp-tools: xdp-loader, whose
# libxdp dispatcher the coexistence tests put beside bpfunits (on kernels that permit freplace).
# prometheus: a real Prometheus server scrapes the daemon's metrics in a test (on a port of its own;
# Debian's service, where systemd starts it, is not used). tmux: the terminal `bpfunits top` is tested in.
# mmdebstrap, buildah, podman, runc, skopeo: `make image` builds the container image from Debian's
# packages, the tests run it with podman (runc: crun refuses hosts with cgroup v1 beside v2), and
# skopeo pushes it. mmdebstrap, systemd-container: tests/packaging/booted boots the package's service
# under systemd in a Debian 12 container (systemd-nspawn).
packages=(clang llvm libbpf-dev libbpf1 bpftool python3-bpfcc iproute2 linux-headers-amd64 make graphviz
          ansible-core systemd dpkg-dev procps strace zsh qemu-system-x86 udev kmod busybox-static
          xdp-tools prometheus tmux mmdebstrap buildah podman runc skopeo systemd-container)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bcc compiles against /lib/modules/$(uname -r)/build. Kernels built outside Debian
# ship no headers; Debian's newest linux-headers-amd64 is close enough for BPF
# programs, which only need the UAPI and a kernel config.
mod=/lib/modules/$(uname -r)
if [ ! -e "$mod/build/include" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$hdr" ]; then
    echo "setup-host: no /usr/src/linux-headers-*-amd64 after installing linux-headers-amd64" >&2
    exit 1
  fi
  common=${hdr%-amd64}-common
  mkdir -p "$mod"
  ln -sfn "$hdr" "$mod/build"
  ln -sfn "$common" "$mod/source"
  echo "setup-host: linked $mod/build -> $hdr"
fi

# bpffs is not mounted at boot on every machine.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
