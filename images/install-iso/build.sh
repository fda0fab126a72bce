#!/usr/bin/env bash
# Build the test install CD: "Tiny Linux" as a live system on a BIOS-
# bootable ISO (isolinux), with an installer that puts it onto the
# machine's first disk.
#
# usage: images/install-iso/build.sh TINY_DIR OUTDIR
#
# TINY_DIR is the output of images/tiny-linux/build.sh (kernel, initrd,
# disk.qcow2). Writes OUTDIR/tiny-install.iso. The live system lives
# entirely in the CD's initramfs: the guest never has to read the CD
# itself (an HVM guest's CD drive sits on AHCI, which the Debian cloud
# kernel has no driver for). The initramfs is Tiny Linux's own initrd
# (its virtio modules) plus Tiny Linux's root file system (read straight
# out of disk.qcow2 with debugfs, nothing mounted) plus the installer:
# /usr/sbin/tiny-install and what it needs (sfdisk, mke2fs and extlinux
# from the host, with their libraries; the kernel, initrd and root tree
# to copy; syslinux's MBR code).
#
# Skipped when OUTDIR/tiny-install.iso is newer than this directory's
# files and TINY_DIR/manifest.json (FORCE=1 rebuilds). Built in
# OUTDIR/.work and moved into place at the end.
set -euo pipefail
export LC_ALL=C
umask 022

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "install-iso: error: $*" >&2; exit 1; }
log() { echo "install-iso: $*" >&2; }

[[ $# -eq 2 ]] || die "usage: $0 TINY_DIR OUTDIR"
TINY=$(cd "$1" && pwd)
mkdir -p "$2"
OUTDIR=$(cd "$2" && pwd)
ISO=$OUTDIR/tiny-install.iso

up_to_date() {
    [[ -f $ISO && $ISO -nt $TINY/manifest.json ]] &&
        [[ -z $(find "$SRC_DIR" -newer "$ISO" -print -quit) ]]
}
if [[ ${FORCE:-0} != 1 ]] && up_to_date; then
    exit 0
fi
exec 9>"$OUTDIR/.lock"
flock 9
if [[ ${FORCE:-0} != 1 ]] && up_to_date; then
    exit 0
fi
[[ $EUID -eq 0 ]] || die "must run as root"
[[ -f $TINY/manifest.json ]] || die "no $TINY/manifest.json (build images/tiny-linux first)"

ISOLINUX_BIN=/usr/lib/ISOLINUX/isolinux.bin
ISOHYBRID_MBR=/usr/lib/ISOLINUX/isohdpfx.bin
LDLINUX_C32=/usr/lib/syslinux/modules/bios/ldlinux.c32
SYSLINUX_MBR=/usr/lib/syslinux/mbr/mbr.bin
for f in $ISOLINUX_BIN $ISOHYBRID_MBR $LDLINUX_C32 $SYSLINUX_MBR; do
    [[ -f $f ]] || die "$f missing (install isolinux, syslinux-common)"
done
for tool in xorriso debugfs sfdisk mke2fs extlinux qemu-img cpio gzip ldd; do
    command -v "$tool" >/dev/null || die "$tool not found (install packages.txt)"
done

WORK=$OUTDIR/.work
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
LIVE=$WORK/live
PAYLOAD=$LIVE/usr/share/tiny-install

# --- 1. Tiny Linux's initrd and root file system -----------------------------
log "unpacking Tiny Linux"
mkdir -p "$LIVE"
(cd "$LIVE" && gzip -dc "$TINY/initrd.img" | cpio --quiet -i -d -m --no-absolute-filenames)
qemu-img convert -O raw "$TINY/disk.qcow2" "$WORK/disk.raw"
# The root is the disk's second partition; find its offset in the table.
p2_start=$(sfdisk -d "$WORK/disk.raw" | sed -n 's/^[^:]*2 : start= *\([0-9]*\),.*/\1/p')
[[ -n $p2_start ]] || die "no second partition in $TINY/disk.qcow2"
mkdir -p "$WORK/root"
debugfs -R "rdump / $WORK/root" "$WORK/disk.raw?offset=$((p2_start * 512))" 2>/dev/null
rm -rf "$WORK/root/lost+found" "$WORK/disk.raw"
chmod 1777 "$WORK/root/tmp"
[[ -x $WORK/root/bin/busybox ]] || die "no Tiny Linux root file system read from the disk"

# The live system: the root tree over the initrd's tree (same busybox).
cp -a "$WORK/root/." "$LIVE/"
echo tiny-live >"$LIVE/etc/hostname"

# --- 2. The installer's payload -----------------------------------------------
mkdir -p "$PAYLOAD/bin"
cp "$TINY/vmlinuz" "$TINY/initrd.img" "$SYSLINUX_MBR" "$PAYLOAD/"
(cd "$WORK/root" && tar -cf "$PAYLOAD/root.tar" --numeric-owner .)
# Host tools the installer runs, with the shared libraries they load, at
# the same paths (the loader path is compiled into each binary).
copy_tool() {
    local bin lib
    bin=$(command -v "$1")
    cp "$bin" "$PAYLOAD/bin/"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        [[ -e $LIVE$lib ]] || install -D -m 755 "$(readlink -f "$lib")" "$LIVE$lib"
    done
}
for tool in sfdisk mke2fs extlinux; do copy_tool "$tool"; done
[[ -f /etc/mke2fs.conf ]] && cp /etc/mke2fs.conf "$LIVE/etc/"
install -m 755 "$SRC_DIR/tiny-install" "$LIVE/usr/sbin/tiny-install"

# --- 3. Live init -----------------------------------------------------------
# Load the drivers (the initrd's load order), then run busybox init from
# the initramfs itself: no root to switch to.
cat >"$LIVE/init" <<'EOF'
#!/bin/sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
read -r release </etc/kernel-release
kdir=/lib/modules/$release
while read -r m; do
    insmod "$kdir/$m" || echo "live: warning: insmod $m failed"
done <"$kdir/load-order"
echo "live: Tiny Linux live CD; run 'tiny-install' to install it onto /dev/vda"
exec /sbin/init
EOF
chmod 755 "$LIVE/init"
cat >"$LIVE/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/cttyhack /bin/sh -l
tty1::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
EOF

log "building the live initramfs"
(cd "$LIVE" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -6 -n >"$WORK/initrd.img"

# --- 4. The CD --------------------------------------------------------------
CD=$WORK/cd
mkdir -p "$CD/isolinux" "$CD/live"
cp "$ISOLINUX_BIN" "$LDLINUX_C32" "$CD/isolinux/"
cp "$TINY/vmlinuz" "$CD/live/vmlinuz"
mv "$WORK/initrd.img" "$CD/live/initrd.img"
cat >"$CD/isolinux/isolinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT live
PROMPT 0
TIMEOUT 0
LABEL live
    KERNEL /live/vmlinuz
    INITRD /live/initrd.img
    APPEND console=tty0 console=ttyS0 quiet
EOF
log "writing tiny-install.iso"
xorriso -as mkisofs -quiet -o "$WORK/tiny-install.iso" -V TINY_INSTALL -R -J \
    -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot \
    -boot-load-size 4 -boot-info-table -isohybrid-mbr "$ISOHYBRID_MBR" "$CD"
mv -f "$WORK/tiny-install.iso" "$ISO"
log "done: $ISO ($(du -k "$ISO" | cut -f1) KiB)"
