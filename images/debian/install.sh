#!/usr/bin/env bash
# Install Debian into an empty disk image: the "Debian 12" template's
# installer, run by xeniad (VM.provision) as a child process.
#
# usage: install.sh TARGET MIRROR SUITE HOSTNAME PASSWORD_FILE PROGRESS_FILE [CACHE_DIR]
#
# TARGET is what qemu-img opens for the new VM's empty disk (a qcow2 file
# or URL, of the disk's final size). An empty MIRROR means the Debian
# mirror this host's apt uses. debootstrap builds the system from
# MIRROR in a scratch directory (with systemd, the cloud kernel, the
# QEMU guest agent, systemd-networkd on DHCP, a serial console); the disk
# is then made the way images/tiny-linux does it, without mounting
# anything: an MBR with syslinux's boot code, a FAT boot partition
# (syslinux, the kernel and initrd), an ext4 root made with mke2fs -d;
# qemu-img writes it into TARGET. The root password is read from
# PASSWORD_FILE; PROGRESS_FILE gets a fraction from 0 to 1 (replaced
# atomically) as the work goes on. CACHE_DIR keeps downloaded packages
# for the next install. Exits non-zero, with the reason on stderr, on
# any failure; TARGET is then left for the caller to remove.
set -euo pipefail
export LC_ALL=C
umask 022

die() { echo "debian-install: error: $*" >&2; exit 1; }
[[ $# -ge 6 ]] || die "usage: $0 TARGET MIRROR SUITE HOSTNAME PASSWORD_FILE PROGRESS_FILE [CACHE_DIR]"
target=$1 mirror=$2 suite=$3 host=$4 pwfile=$5 progress=$6 cache=${7:-}
step() {
    echo "$1" >"$progress.tmp" && mv -f "$progress.tmp" "$progress"
    echo "debian-install: $2" >&2
}
for tool in debootstrap chroot sfdisk mkfs.fat mcopy syslinux mke2fs qemu-img; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
SYSLINUX_MBR=/usr/lib/syslinux/mbr/mbr.bin
[[ -f $SYSLINUX_MBR ]] || die "$SYSLINUX_MBR missing"
if [[ -z $mirror ]]; then
    # the main archive among apt's sources (not -security, -updates, ...)
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT) $(IDENTIFIER)' |
        awk '$3 == "main" && $4 == "Packages" && $2 !~ /-/ { print $1; exit }')
    mirror=${mirror%/}
    [[ -n $mirror ]] || die "no Debian mirror in apt's sources: set other-config:install-repository"
fi
size=$(qemu-img info --output=json "$target" | sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p')
[[ -n $size && $size -ge $((2 * 1024 * 1024 * 1024)) ]] ||
    die "the disk must hold at least 2 GiB (it has ${size:-?} bytes)"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/xenia-debian.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

# --- 1. debootstrap ------------------------------------------------------------
step 0.02 "debootstrap $suite from $mirror"
pkgs=systemd-sysv,udev,linux-image-cloud-amd64,qemu-guest-agent,iproute2,ca-certificates
opts=(--variant=minbase --include="$pkgs")
if [[ -n $cache ]]; then
    mkdir -p "$cache"
    opts+=(--cache-dir="$(cd "$cache" && pwd)")
fi
debootstrap "${opts[@]}" "$suite" "$root" "$mirror" >&2 ||
    die "debootstrap failed (see above)"

# --- 2. configuration -------------------------------------------------------------
step 0.75 "configuring"
echo "$host" >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost\n' "$host" \
    >"$root/etc/hosts"
printf '/dev/vda2\t/\text4\terrors=remount-ro\t0 1\n' >"$root/etc/fstab"
echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/80-dhcp.network"
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# a new machine id at first boot, not the one of this build
: >"$root/etc/machine-id"
{ printf 'root:'; cat "$pwfile"; echo; } | chroot "$root" chpasswd ||
    die "cannot set the root password"
rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
kernel=$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -n1)
initrd=initrd.img-${kernel#vmlinuz-}
[[ -f $root/boot/$initrd ]] || die "the kernel package made no $initrd"

# --- 3. the disk -------------------------------------------------------------------
step 0.8 "writing the disk"
SECTOR=512
P1_START=2048
P1_SECTORS=$((256 * 1024 * 1024 / SECTOR))
P2_START=$((P1_START + P1_SECTORS))
P2_SECTORS=$((size / SECTOR - P2_START))
raw=$work/disk.raw
truncate -s "$size" "$raw"
sfdisk --quiet --no-reread --no-tell-kernel "$raw" <<EOF
label: dos
unit: sectors
start=$P1_START, size=$P1_SECTORS, type=e, bootable
start=$P2_START, size=$P2_SECTORS, type=83
EOF
dd if="$SYSLINUX_MBR" of="$raw" bs=440 count=1 conv=notrunc status=none
mkfs.fat -F 16 -n DEBBOOT -h $P1_START --offset $P1_START "$raw" \
    $((P1_SECTORS * SECTOR / 1024)) >/dev/null 2>&1 || die "mkfs.fat failed"
cat >"$work/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
    LINUX /vmlinuz
    INITRD /initrd.img
    APPEND root=/dev/vda2 ro console=tty0 console=ttyS0,115200
EOF
cp "$root/boot/$kernel" "$work/vmlinuz"
cp "$root/boot/$initrd" "$work/initrd.img"
export MTOOLS_SKIP_CHECK=1
mcopy -i "$raw@@$((P1_START * SECTOR))" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
syslinux --install --offset $((P1_START * SECTOR)) "$raw"
mke2fs -q -F -t ext4 -L debian-root -d "$root" -E offset=$((P2_START * SECTOR)),nodiscard \
    "$raw" $((P2_SECTORS * SECTOR / 1024))k
step 0.9 "copying into the VM's disk"
qemu-img convert -n --target-is-zero -f raw -O qcow2 "$raw" "$target"
step 1 "done: Debian $suite ($kernel) on $target"
