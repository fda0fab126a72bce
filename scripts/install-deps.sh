#!/usr/bin/env bash
# Install the Debian packages Xenia needs, and only those that are
# missing (idempotent; a second run does nothing and needs no network).
#   scripts/install-deps.sh           build and run
#   scripts/install-deps.sh --test    what the tests need as well
#   scripts/install-deps.sh --bench   what the benchmarks compare against
#   scripts/install-deps.sh --fuzz    clang and libFuzzer
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential pkg-config libuv1-dev libsqlite3-dev libjansson-dev
      libhttp-parser-dev libcurl4-openssl-dev libssl-dev libcrypt-dev libxml2-dev
      libnfs-dev libnbd-dev libext2fs-dev comerr-dev libnl-3-dev libnl-route-3-dev libbpf-dev qemu-system-x86 qemu-utils
      dnsmasq-base librrd-dev libncurses-dev libwslay-dev libarchive-dev libxxhash-dev
      openssh-client xorriso debootstrap)
# node and npm build the web console (web/); a node installed some other
# way (e.g. from nodesource) is kept: Debian's would replace it
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
mapfile -t image_pkgs < <(cat images/*/packages.txt | grep -v '^\s*#' | grep -v '^\s*$' | sort -u)
pkgs+=("${image_pkgs[@]}")
case "${1:-}" in
--test)
	pkgs+=(python3 procps genisoimage iproute2 iputils-ping)
	# nft: the NAT tests read the daemon's nftables rules
	pkgs+=(nftables)
	# a userspace NFS server for the NFS SR tests, and nfs-ls
	pkgs+=(nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils)
	# the browser the web console's end-to-end tests drive (tests/e2e)
	pkgs+=(chromium)
	;;
--bench) pkgs+=(python3 libvirt-daemon-system libvirt-clients virtinst) ;;
--fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package lists may be missing or stale on a fresh machine.
apt-get install -y -q --no-install-recommends "${missing[@]}" ||
	{ apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
