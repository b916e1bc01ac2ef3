#!/usr/bin/env bash
# Builds dist/bpfunits_<version>_<arch>.deb with dpkg-deb, from this checkout:
#   /usr/bin/bpfunits                  a launcher for Debian's python3
#   /usr/lib/bpfunits/python/          bpfunits and its Python dependencies, at the versions the
#                                      venv tests ran with (pip fetches them; PyYAML, rpds-py are
#                                      compiled, hence an architecture and Python 3.11 only)
#   /usr/lib/bpfunits/*.bpf.o          the example programs
#   /usr/share/doc/bpfunits/examples/  the example units, pointing at those objects
#   the service, its tmpfiles.d entry, bash completion, /etc/bpfunits.yaml, /etc/bpfunits.d
# Usage: [DIST=FOLDER] scripts/build-deb.sh [PYTHON]   (default: dist, and .venv/bin/python, whose
# pip fetches the dependencies at the versions the venv has)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
pkg=packaging/debian
dist=${DIST:-dist}
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
arch=$(dpkg --print-architecture)
out=$dist/bpfunits_${version}_${arch}.deb

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
lib=$root/usr/lib/bpfunits
doc=$root/usr/share/doc/bpfunits

make -s -C bpf
mkdir -p "$dist"
# From a copy, so the build leaves no build/ or egg-info in the checkout.
mkdir "$work/src"
cp -r pyproject.toml README.md bpfunits "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel "$work/src" -w "$dist" --no-deps -q --disable-pip-version-check
"$python" -m pip freeze --exclude-editable --disable-pip-version-check > "$work/constraints.txt"
"$python" -m pip install -q --disable-pip-version-check --no-compile --target "$lib/python" \
    --constraint "$work/constraints.txt" "$dist/bpfunits-$version-py3-none-any.whl"
# Console scripts point at the build's interpreter; the launcher replaces them.
rm -rf "$lib/python/bin"
# Byte-compiled now, for the interpreter that runs it, so dpkg owns every .pyc.
/usr/bin/python3 -m compileall -q -j 0 -s "$lib/python" -p /usr/lib/bpfunits/python "$lib/python" >/dev/null
install -D -m 0755 "$pkg/bpfunits.launcher" "$root/usr/bin/bpfunits"
install -m 0644 bpf/examples/*.bpf.o "$lib/"
install -d "$root/usr/lib/bpfunits.d" "$root/etc/bpfunits.d"
install -D -m 0644 "$pkg/bpfunits.yaml" "$root/etc/bpfunits/bpfunits.yaml"
install -D -m 0644 packaging/systemd/bpfunits.service "$root/lib/systemd/system/bpfunits.service"
install -D -m 0644 packaging/systemd/bpfunits.tmpfiles "$root/usr/lib/tmpfiles.d/bpfunits.conf"
install -d "$root/usr/share/bash-completion/completions"
"$root/usr/bin/bpfunits" completion bash > "$root/usr/share/bash-completion/completions/bpfunits"
install -d "$doc/examples/bpf"
for unit in units.example.d/*; do
    sed 's#\.\./bpf/examples/\([a-z]*\.bpf\.o\)#/usr/lib/bpfunits/\1#' "$unit" > "$doc/examples/$(basename "$unit")"
done
install -m 0644 bpf/examples/*.c bpf/examples/*.h "$doc/examples/bpf/"
install -m 0644 README.md "$pkg/copyright" "$doc/"
chmod -R u=rwX,go=rX "$root"

install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$pkg/control.in" > "$root/DEBIAN/control"
install -m 0644 "$pkg/conffiles" "$root/DEBIAN/"
install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
