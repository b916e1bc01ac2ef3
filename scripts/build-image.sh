#!/usr/bin/env bash
# Builds the container image of the DaemonSet (packaging/kubernetes/) without any registry:
#   layer 1  a minimal Debian 12 root file system made by mmdebstrap from Debian's packages:
#            python3 and libbpf1 (what the package depends on), dpkg and what its maintainer
#            scripts call; no shell other than dash, no apt, perl, docs, man pages, locales or
#            gconv modules (dpkg drops those only while mmdebstrap installs: the .deb's own
#            files are all installed). Cached: its tarball in BPFUNITS_IMAGE_CACHE and the
#            image localhost/bpfunits-base:KEY in the podman store, KEY a hash of its recipe, so
#            only a change of the recipe rebuilds it (or removing both, for Debian's updates).
#   layer 2  the project's .deb (scripts/build-deb.sh), installed with dpkg: the image holds
#            exactly the package's files, and a code change rebuilds only this layer.
# Entrypoint `bpfunits daemon`; OCI labels (version, revision, source, ...). Output: the image
# localhost/bpfunits:VERSION in the local podman store and dist/bpfunits-VERSION.oci.tar (push it with
# `skopeo copy oci-archive:dist/bpfunits-VERSION.oci.tar docker://REGISTRY/bpfunits:VERSION`).
# --bcc: the -bcc variant (localhost/bpfunits:VERSION-bcc), whose base has python3-bpfcc too, for
# units with Source=; 240 MB more (LLVM, clang, perl), hence not in the default image.
# Usage: [DIST=FOLDER] [BPFUNITS_IMAGE_CACHE=FOLDER] scripts/build-image.sh [--bcc] [DEB]
#   (default: builds the .deb with scripts/build-deb.sh and .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${DIST:-dist}
cache=${BPFUNITS_IMAGE_CACHE:-$HOME/.cache/bpfunits-image}
name=localhost/bpfunits
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
arch=$(dpkg --print-architecture)
variant=
extra=
if [ "${1:-}" = --bcc ]; then
    variant=-bcc
    extra=,python3-bpfcc
    shift
fi
tag=$version$variant
deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(DIST=$dist bash scripts/build-deb.sh .venv/bin/python)
fi

# The base recipe. The daemon runs no other program (bpfunits talks netlink and bpf() itself), so
# iproute2 is left out, and bcc but in the -bcc variant (see the README's "Container image"). dpkg
# needs the rest: tar, diff, find, sed, grep, debianutils and mawk, dash and coreutils for
# maintainer scripts.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$arch-linux-gnu")
base_args=(--variant=custom --architectures="$arch"
           --include=base-files,base-passwd,libc-bin,dash,coreutils,dpkg,tar,diffutils,findutils,sed,grep,debianutils,mawk
           --include="python3,libbpf1$extra" --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
           --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
           --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
           --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
           --dpkgopt="path-exclude=/usr/lib/$multiarch/gconv/*"
           --customize-hook='rm "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap"' --skip=output/dev bookworm)
key=$(printf '%s\n' "${base_args[@]}" | sha256sum | cut -c1-12)
base=localhost/bpfunits-base:$key$variant
if podman image exists "$base"; then
    echo "build-image: base $base (cached)" >&2
else
    mkdir -p "$cache"
    tarball=$cache/base-$key.tar
    if [ ! -s "$tarball" ]; then
        echo "build-image: mmdebstrap ${base_args[*]}" >&2
        # mmdebstrap's hooks talk even when --quiet: the log is kept, and shown on failure.
        mmdebstrap --quiet "${base_args[@]}" "$tarball.tmp.tar" >"$cache/mmdebstrap.log" 2>&1 \
            || { cat "$cache/mmdebstrap.log" >&2; exit 1; }
        mv "$tarball.tmp.tar" "$tarball"
    fi
    podman import --quiet "$tarball" "$base" >/dev/null
    echo "build-image: base $base (from $tarball)" >&2
fi

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || revision="$revision-dirty"
source=${BPFUNITS_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo "file://$PWD")}
ctr=$(buildah from --quiet --pull-never "$base")
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet "$ctr" "$deb" /tmp/bpfunits.deb >/dev/null
# One run, one layer: the package and nothing else (dpkg's log and backups are dropped). Chroot
# isolation needs no OCI runtime, hence works on cgroup v1 hosts too.
buildah run --isolation=chroot --no-hosts "$ctr" -- sh -c \
    'dpkg -i /tmp/bpfunits.deb >/dev/null && rm -f /tmp/bpfunits.deb /var/log/dpkg.log /var/lib/dpkg/*-old'
buildah config \
    --entrypoint '["/usr/bin/bpfunits", "daemon"]' --cmd '' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --workingdir / --user 0:0 --stop-signal SIGTERM \
    --label org.opencontainers.image.title=bpfunits \
    --label "org.opencontainers.image.description=bpfunits daemon: declarative chains of eBPF programs on XDP and tc hooks" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.source=$source" \
    --label org.opencontainers.image.licenses=GPL-2.0-only \
    --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$ctr"
previous=$(podman image inspect --format '{{.Id}}' "$name:$tag" 2>/dev/null || true)
buildah commit --quiet --format oci --rm "$ctr" "$name:$tag" >/dev/null
trap - EXIT
# The image this one replaces, untagged now; kept only if a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$name:$tag")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
fi

mkdir -p "$dist"
archive=$dist/bpfunits-$tag.oci.tar
rm -f "$archive"
podman save --quiet --format oci-archive -o "$archive" "$name:$tag"
size=$(podman image inspect --format '{{.Size}}' "$name:$tag")
echo "build-image: $name:$tag, $((size / 1000000)) MB ($size bytes, uncompressed), archive $archive" >&2
echo "$archive"
