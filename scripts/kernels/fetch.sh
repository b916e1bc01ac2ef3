#!/usr/bin/env bash
# Fetches the Debian kernel images of kernels.list into the cache, once:
#   CACHE/NAME/root/boot/vmlinuz-VERSION  with its modules (depmod run) under CACHE/NAME/root/lib/modules
#   CACHE/NAME/vmlinuz                    the image to boot (a link into root/)
#   CACHE/NAME/package                    the package name and version fetched
# A kernel already in the cache is used as it is, without any network access, so a second run downloads
# nothing. Apt runs with a private state (sources, lists, cache) under CACHE/apt: the system's apt sources
# are never modified. The mirror URLs are those the system's sources already use.
# Usage: fetch.sh [NAME...]   (default: every kernel of kernels.list)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Not under /var/cache: virtme-ng hides /var/cache in the guest behind a tmpfs, and the guest reads the
# modules from here.
cache=${BPFUNITS_KERNEL_CACHE:-/var/lib/bpfunits/kernels}
list=$here/kernels.list
wanted=("$@")

# name suites pattern, for the kernels asked for that are not yet cached.
todo=()
while read -r name suites pattern; do
  case $name in ''|'#'*) continue ;; esac
  if [ ${#wanted[@]} -gt 0 ] && ! printf '%s\n' "${wanted[@]}" | grep -qxF "$name"; then continue; fi
  if [ -e "$cache/$name/vmlinuz" ]; then
    echo "fetch: $name cached: $(cat "$cache/$name/package")"
  else
    todo+=("$name $suites $pattern")
  fi
done < "$list"
[ ${#todo[@]} -gt 0 ] || exit 0

# The system's Debian mirrors: the archive (for bookworm, bullseye, *-backports) and the security archive.
targets=$(apt-get indextargets --format '$(ORIGIN) $(REPO_URI) $(RELEASE)' | sort -u)
mirror=$(awk '$1 == "Debian" && $3 !~ /-security$/ {print $2; exit}' <<<"$targets")
security=$(awk '$1 == "Debian" && $3 ~ /-security$/ {print $2; exit}' <<<"$targets")
if [ -z "$mirror" ] || [ -z "$security" ]; then
  echo "fetch: no Debian archive and security mirror in the system's apt sources:" >&2
  echo "$targets" >&2
  exit 1
fi

apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$apt_dir/debs"
# apt downloads as the unprivileged _apt user where it can write.
chown _apt "$apt_dir/debs" 2>/dev/null || true
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
for entry in "${todo[@]}"; do
  read -r _ suites _ <<<"$entry"
  tr ',' '\n' <<<"$suites"
done | sort -u | while read -r suite; do
  case $suite in *-security) uri=$security ;; *) uri=$mirror ;; esac
  echo "deb [signed-by=$keyring] $uri $suite main"
done > "$apt_dir/sources.list"

apt_private=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "APT::Architectures=amd64"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
)
echo "fetch: apt-get update (private state in $apt_dir)"
apt-get "${apt_private[@]}" update -qq

for entry in "${todo[@]}"; do
  read -r name suites pattern <<<"$entry"
  # Newest first by version sort of the package name (it carries the kernel's ABI version).
  package=$(apt-cache "${apt_private[@]}" pkgnames linux-image- | grep -E "$pattern" | sort -V | tail -n 1 || true)
  if [ -z "$package" ]; then
    echo "fetch: $name: no package matches $pattern in $suites" >&2
    exit 1
  fi
  version=$(apt-cache "${apt_private[@]}" policy "$package" | awk '/Candidate:/ {print $2}')
  echo "fetch: $name: $package $version"
  (cd "$apt_dir/debs" && apt-get "${apt_private[@]}" download -q "$package=$version")
  deb=$(ls "$apt_dir/debs/${package}_"*.deb | sort -V | tail -n 1)
  # Unpack next to the cache entry and move it into place only when complete.
  tmp=$cache/$name.partial
  rm -rf "$tmp"
  mkdir -p "$tmp/root"
  dpkg -x "$deb" "$tmp/root"
  image=$(ls "$tmp"/root/boot/vmlinuz-* | head -n 1)
  kver=${image##*/vmlinuz-}
  depmod -b "$tmp/root" "$kver"
  ln -s "root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
  echo "$package $version" > "$tmp/package"
  rm -f "$deb"
  rm -rf "$cache/$name"
  mv "$tmp" "$cache/$name"
done
