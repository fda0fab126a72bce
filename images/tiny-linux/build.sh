#!/usr/bin/env bash
# Build the "Tiny Linux" guest template: a Debian cloud kernel, a busybox
# initramfs and a 1 GiB BIOS-bootable root disk.
#
# usage: images/tiny-linux/build.sh OUTDIR
#
# Writes OUTDIR/{vmlinuz,initrd.img,disk.qcow2,manifest.json} and keeps the
# downloaded kernel package in OUTDIR/cache.  Nothing is mounted and nothing
# is installed on the host: the kernel .deb is only unpacked, the file
# systems are written straight into the disk image at their partition
# offsets (mkfs.fat --offset, mtools "@@offset", syslinux --offset,
# mke2fs -E offset).  Host packages needed: see packages.txt.
#
# The build is skipped when OUTDIR/manifest.json is newer than every file in
# this directory (set FORCE=1 to rebuild anyway).  Outputs are built in
# OUTDIR/.work and moved into place at the end, manifest.json last, so an
# interrupted build never looks complete.
set -euo pipefail
# Stable tool output (apt-cache is parsed) and predictable file modes in the
# guest image, whatever the caller's environment.
export LC_ALL=C
umask 022

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "tiny-linux: error: $*" >&2; exit 1; }
log() { echo "tiny-linux: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 OUTDIR"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)

# --- Fast path -------------------------------------------------------------
# Up to date when every output exists and the manifest (written last) is
# newer than every builder source.
up_to_date() {
    local f
    for f in manifest.json vmlinuz initrd.img disk.qcow2; do
        [[ -f $OUTDIR/$f ]] || return 1
    done
    [[ -z $(find "$SRC_DIR" -newer "$OUTDIR/manifest.json" -print -quit) ]]
}
if [[ ${FORCE:-0} != 1 ]] && up_to_date; then
    exit 0
fi

# Serialise concurrent builds into the same OUTDIR (e.g. parallel make), and
# re-check once we hold the lock: another build may just have finished.
exec 9>"$OUTDIR/.lock"
flock 9
if [[ ${FORCE:-0} != 1 ]] && up_to_date; then
    exit 0
fi

# Root is needed for the initramfs /dev/console node and for root-owned
# files in the ext4 image (mke2fs -d copies the builder's uid/gid).
[[ $EUID -eq 0 ]] || die "must run as root"

# --- Configuration ---------------------------------------------------------
KERNEL_META=linux-image-cloud-amd64
KERNEL_ARGS="console=ttyS0 root=/dev/vda2 quiet"
GUEST_HOSTNAME=tiny

# Kernel modules the guest needs, by module name.  Their dependencies are
# added from modules.dep; any that the kernel has built in are skipped.
#   virtio_pci      virtio PCI transport (pulls in virtio, virtio_ring, ...)
#   virtio_blk      root disk
#   ext4            root file system (built in on the Debian cloud kernel)
#   virtio_net      network (pulls in failover, net_failover)
#   virtio_console  virtio serial / console channels
#   button          ACPI power button -> "Power Button" input device
#   evdev           /dev/input/event*, which acpid reads
#   pvpanic_mmio    tells QEMU when the kernel panics (GUEST_PANICKED), so the
#                   host applies actions-after-crash
#   virtio_scsi     CD drives of kernel-booted guests sit on virtio-scsi (the
#                   cloud kernel has no AHCI driver)
#   sr_mod          SCSI CD-ROM -> /dev/sr0 (pulls in cdrom, scsi_mod)
#   isofs           ISO 9660, to mount a CD
#   virtio_balloon  memory balloon (the host's dynamic memory control)
# virtio_console also carries the guest agent's channel (a virtio-serial port).
WANTED_MODULES=(virtio_pci virtio_blk ext4 virtio_net virtio_console button evdev pvpanic_mmio
                virtio_scsi sr_mod isofs virtio_balloon)

# The guest agent: Debian's qemu-guest-agent and the packages holding the
# shared libraries it loads (its DT_NEEDED closure, checked at build time,
# so a new dependency fails the build instead of the guest).  Only the
# program and those libraries are copied into the root file system.
AGENT_PACKAGES=(qemu-guest-agent libglib2.0-0 libpcre2-8-0 libnuma1 liburing2 libudev1 libc6)
AGENT_PORT=org.qemu.guest_agent.0

# Disk layout, in 512-byte sectors: 1 GiB MBR disk, partition 1 = 24 MiB
# FAT16 boot partition (syslinux + kernel + initrd) starting at 1 MiB,
# partition 2 = ext4 root over the rest.
SECTOR=512
DISK_SECTORS=$((1024 * 1024 * 1024 / SECTOR))
P1_START=2048
P1_SECTORS=$((24 * 1024 * 1024 / SECTOR))
P2_START=$((P1_START + P1_SECTORS))
P2_SECTORS=$((DISK_SECTORS - P2_START))

SYSLINUX_MBR=/usr/lib/syslinux/mbr/mbr.bin

CACHE=$OUTDIR/cache
WORK=$OUTDIR/.work
mkdir -p "$CACHE"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

for tool in apt-cache apt-get dpkg-deb depmod cpio gzip sfdisk mkfs.fat mcopy \
            syslinux mke2fs qemu-img readelf; do
    command -v "$tool" >/dev/null || die "$tool not found (install packages.txt)"
done
[[ -f $SYSLINUX_MBR ]] || die "$SYSLINUX_MBR missing (install syslinux-common)"

# busybox must be the static build: it runs inside the guest without libc.
BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
[[ -n $BUSYBOX && -x $BUSYBOX ]] || die "busybox-static is not installed"

# --- 1. Kernel ---------------------------------------------------------------
# Resolve the metapackage to the versioned image package it depends on, and
# fetch that exact version into the cache (never installed on the host).
# The candidate's "Depends: linux-image-6.1.0-NN-cloud-amd64 (= VERSION)"
# gives both in one apt-cache call (each call costs ~1 s here).  Without
# usable apt lists, fall back to whatever the cache already holds.
read -r kpkg kver < <(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null |
    sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p' |
    head -n1) || true
if [[ -n $kpkg && -n $kver ]]; then
    kdeb=$CACHE/${kpkg}_${kver//:/%3a}_amd64.deb
    if [[ ! -f $kdeb ]]; then
        log "downloading $kpkg $kver"
        # Download into a temporary name so a broken transfer is never cached;
        # Sandbox::User=root avoids apt's "_apt cannot access" warning.
        (cd "$WORK" && apt-get download -q -o APT::Sandbox::User=root \
            "$kpkg=$kver" >/dev/null)
        mv "$WORK/$(basename "$kdeb")" "$kdeb.part"
        # Drop kernel packages superseded by this one.
        find "$CACHE" -maxdepth 1 -name 'linux-image-*.deb' -delete
        mv "$kdeb.part" "$kdeb"
    fi
else
    # shellcheck disable=SC2012  # newest first; names are plain package names
    kdeb=$(ls -t "$CACHE"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
    [[ -n $kdeb ]] || die "cannot resolve $KERNEL_META (run apt-get update)"
    log "apt lists unusable; using cached $(basename "$kdeb")"
fi
kpkg=$(dpkg-deb -f "$kdeb" Package)
kver=$(dpkg-deb -f "$kdeb" Version)

log "unpacking $kpkg $kver"
dpkg-deb -x "$kdeb" "$WORK/kernel"
# The module directory name is the kernel release (uname -r).
KREL=$(basename "$(find "$WORK/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d)")
KMOD=$WORK/kernel/lib/modules/$KREL
cp "$WORK/kernel/boot/vmlinuz-$KREL" "$WORK/vmlinuz"
# The package ships no modules.dep (it is made at install time): make it.
depmod -b "$WORK/kernel" "$KREL"

# --- 1b. Guest agent packages -------------------------------------------------
# The candidate version of every agent package in one apt-cache call; each
# .deb is fetched into the cache once (one apt-get call for all missing
# ones) and unpacked into $WORK/agent.  Without usable apt lists, the
# newest cached .deb of each package is used.
AGENT_DEBS=()
declare -A agent_want=()
while read -r pkg ver; do
    agent_want[$pkg]=$ver
done < <(apt-cache show --no-all-versions "${AGENT_PACKAGES[@]}" 2>/dev/null |
    awk '/^Package: /{p=$2} /^Version: /{print p, $2}')
missing=()
for pkg in "${AGENT_PACKAGES[@]}"; do
    ver=${agent_want[$pkg]:-}
    if [[ -z $ver ]]; then
        # shellcheck disable=SC2012  # newest first; names are plain package names
        deb=$(ls -t "$CACHE/${pkg}"_*_amd64.deb 2>/dev/null | head -n1 || true)
        [[ -n $deb ]] || die "cannot resolve $pkg (run apt-get update)"
        log "apt lists unusable; using cached $(basename "$deb")"
    else
        deb=$CACHE/${pkg}_${ver//:/%3a}_amd64.deb
        [[ -f $deb ]] || missing+=("$pkg=$ver")
    fi
    AGENT_DEBS+=("$deb")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "downloading ${missing[*]}"
    mkdir -p "$WORK/debs"
    (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User=root \
        "${missing[@]}" >/dev/null)
    for spec in "${missing[@]}"; do
        pkg=${spec%%=*}
        got=$WORK/debs/${pkg}_${agent_want[$pkg]//:/%3a}_amd64.deb
        [[ -f $got ]] || die "apt-get download did not give $(basename "$got")"
        # Drop versions of this package superseded by the new one.
        find "$CACHE" -maxdepth 1 -name "${pkg}_*_amd64.deb" -delete
        mv "$got" "$CACHE/"
    done
fi
for deb in "${AGENT_DEBS[@]}"; do
    dpkg-deb -x "$deb" "$WORK/agent"
done
AGENT_VERSION=$(dpkg-deb -f "${AGENT_DEBS[0]}" Version)

# --- 2. Module selection -----------------------------------------------------
# Produce the wanted modules plus dependencies, dependencies first (a
# depth-first post-order walk of modules.dep), as paths relative to $KMOD.
declare -A mod_seen=()
MODULES=()
add_module_path() {         # $1: path as written in modules.dep
    local path=$1 dep
    [[ -n ${mod_seen[$path]:-} ]] && return 0
    mod_seen[$path]=1
    # shellcheck disable=SC2013  # one line of space-separated paths
    for dep in $(sed -n "s|^${path}: *||p" "$KMOD/modules.dep"); do
        add_module_path "$dep"
    done
    MODULES+=("$path")
}
for name in "${WANTED_MODULES[@]}"; do
    # Module names treat '-' and '_' alike; match either spelling of the file.
    pattern="/${name//[-_]/[-_]}\.ko"
    if grep -q "${pattern}\$" "$KMOD/modules.builtin"; then
        continue                        # built into the kernel
    fi
    path=$(grep -o "^[^:]*${pattern}:" "$KMOD/modules.dep" | head -n1 | tr -d :)
    [[ -n $path ]] || die "module $name is neither built in nor in $kpkg"
    add_module_path "$path"
done
log "kernel $KREL, initrd modules: $(printf '%s ' "${MODULES[@]##*/}")"

# --- 3. Shared busybox tree --------------------------------------------------
# Install busybox with a symlink for every applet, at the paths busybox
# itself reports (bin/sh, sbin/init, usr/bin/...).
install_busybox() {         # $1: root directory
    local root=$1 applet dir up
    mkdir -p "$root/bin"
    cp "$BUSYBOX" "$root/bin/busybox"
    for applet in $("$BUSYBOX" --list-full); do
        # Skip busybox itself and linuxrc (the old initrd entry point).
        [[ $applet == bin/busybox || $applet == linuxrc ]] && continue
        # Relative link, e.g. usr/bin/awk -> ../../bin/busybox: one "../"
        # per directory level.
        up=
        if [[ $applet == */* ]]; then
            dir=${applet%/*}
            mkdir -p "$root/$dir"
            up=${dir//[^\/]/}/         # one "/" per level ...
            up=${up//\//../}            # ... each turned into "../"
        fi
        ln -sf "${up}bin/busybox" "$root/$applet"
    done
}

# --- 4. Initramfs ----------------------------------------------------------
log "building initrd.img"
IRD=$WORK/initrd
install_busybox "$IRD"
mkdir -p "$IRD"/{dev,proc,sys,newroot,etc}
# Early console for /init until devtmpfs is mounted (the kernel's built-in
# initramfs provides one too; this keeps us independent of that).
mknod -m 600 "$IRD/dev/console" c 5 1
mkdir -p "$IRD/lib/modules/$KREL"
for m in "${MODULES[@]}"; do
    install -D -m 644 "$KMOD/$m" "$IRD/lib/modules/$KREL/$m"
    echo "$m"
done >"$IRD/lib/modules/$KREL/load-order"
echo "$KREL" >"$IRD/etc/kernel-release"

cat >"$IRD/init" <<'EOF'
#!/bin/sh
# Tiny Linux initramfs: load drivers, find the root file system, switch to it.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

# Drivers, dependencies first (the order was fixed at build time).
read -r release </etc/kernel-release
kdir=/lib/modules/$release
while read -r m; do
    insmod "$kdir/$m" || echo "initrd: warning: insmod $m failed"
done <"$kdir/load-order"

# Kernel command line: root=DEV|LABEL=..|UUID=.., rootdelay=SECONDS, init=PATH.
root=/dev/vda2 rootdelay=5 init=/sbin/init
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
        root=*)      root=${arg#root=} ;;
        rootdelay=*) rootdelay=${arg#rootdelay=} ;;
        init=*)      init=${arg#init=} ;;
    esac
done

# Device probing is asynchronous: poll for the root device for a while.
find_root() {
    case $root in
        LABEL=*|UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
        *)              dev=$root ;;
    esac
    [ -n "$dev" ] && [ -b "$dev" ]
}
mount_root() {
    tries=$((rootdelay * 20))
    until find_root; do
        [ "$tries" -gt 0 ] || return 1
        tries=$((tries - 1))
        usleep 50000
    done
    mount -o rw "$dev" /newroot
}

until mount_root; do
    echo
    echo "initrd: *** cannot mount root file system '$root' ***"
    echo "initrd: block devices: $(cd /sys/class/block && echo *)"
    echo "initrd: dropping to a rescue shell; exit it to retry."
    # setsid: new session (our child is no group leader, so no extra fork);
    # cttyhack: make the console its controlling tty, for job control and ^C.
    setsid cttyhack sh
done

# Hand the kernel file systems over to the real root, then replace
# ourselves with its init (switch_root also frees the initramfs).
for fs in dev proc sys; do
    mount --move /$fs /newroot/$fs
done
exec switch_root /newroot "$init"
EOF
chmod 755 "$IRD/init"

# newc archive in sorted order with root ownership; gzip -n leaves the
# file name and time out of the gzip header.
(cd "$IRD" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n >"$WORK/initrd.img"

# --- 5. Root file system tree ------------------------------------------------
log "building root file system"
ROOT=$WORK/rootfs
install_busybox "$ROOT"
mkdir -p "$ROOT"/{dev,proc,sys,tmp,run,root,mnt,var/log,etc/init.d,etc/acpi/PWRF}
chmod 1777 "$ROOT/tmp"
chmod 700 "$ROOT/root"
ln -s ../run "$ROOT/var/run"
ln -s /proc/mounts "$ROOT/etc/mtab"

cat >"$ROOT/etc/inittab" <<'EOF'
# busybox init(8) configuration.  Format: <tty>::<action>:<command>
::sysinit:/etc/init.d/rcS
# Root shell on the serial console, no login.  cttyhack makes the tty the
# shell's controlling terminal so job control and ^C work; respawned on exit.
ttyS0::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
# Run by reboot/poweroff/halt before all processes are killed.
::shutdown:/bin/sync
::shutdown:/bin/mount -o remount,ro /
EOF

cat >"$ROOT/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# System initialisation, run once by init (::sysinit).
# Every fork+exec costs ~10 ms under TCG, so shell builtins are preferred.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin

# The initramfs hands over /proc, /sys and /dev already mounted; mount
# whatever is missing (e.g. when booted without it).
mounted=" "
while read -r _ mp _; do mounted="$mounted$mp "; done </proc/mounts
mnt() {         # TYPE DIR OPTIONS
    case $mounted in *" $2 "*) return 0 ;; esac
    mount -t "$1" -o "$3" "$1" "$2"
}
mnt proc     /proc    nosuid,nodev,noexec
mnt sysfs    /sys     nosuid,nodev,noexec
mnt devtmpfs /dev     nosuid,mode=0755
mkdir -p /dev/pts /dev/shm
mnt devpts   /dev/pts nosuid,noexec,gid=5,mode=0620,ptmxmode=0666
mnt tmpfs    /dev/shm nosuid,nodev,mode=1777
mnt tmpfs    /tmp     nosuid,nodev,mode=1777
mnt tmpfs    /run     nosuid,nodev,mode=0755
mount -o remount,rw /

read -r hostname </etc/hostname && echo "$hostname" >/proc/sys/kernel/hostname
ip link set lo up

# Power button -> clean poweroff.  busybox acpid reads the evdev nodes that
# exist when it starts (the initramfs already loaded button + evdev) and
# runs /etc/acpi/PWRF/00000080 on KEY_POWER.  Logs go to tmpfs so the log
# file never keeps / busy when it is remounted read-only at shutdown.
if [ -e /dev/input/event0 ]; then
    acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid
fi

# The guest agent, in the background: it waits for its port to appear.
/etc/init.d/qemu-ga start &
EOF
chmod 755 "$ROOT/etc/init.d/rcS"

cat >"$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# ACPI power button pressed (e.g. QMP system_powerdown): shut down cleanly.
exec /sbin/poweroff
EOF
chmod 755 "$ROOT/etc/acpi/PWRF/00000080"

# The guest agent: qemu-ga and the shared libraries it loads, copied as
# plain files to their Debian paths from the unpacked packages.
AG=$WORK/agent
agent_path() {          # $1: path in $AG -> the file it names, symlinks followed
    local p=$1 t n=0
    while [[ -L $AG/$p ]]; do
        t=$(readlink "$AG/$p")
        if [[ $t == /* ]]; then p=${t#/}; else p=$(dirname "$p")/$t; fi
        (( ++n < 10 )) || die "symlink loop at $AG/$p"
    done
    [[ -f $AG/$p ]] || return 1
    echo "$AG/$p"
}
declare -A agent_lib_done=()
agent_lib() {           # $1: soname; copied with its own DT_NEEDED closure
    local soname=$1 dir file
    [[ -n ${agent_lib_done[$soname]:-} ]] && return 0
    agent_lib_done[$soname]=1
    for dir in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
        if file=$(agent_path "$dir/$soname"); then
            install -D -m 755 "$file" "$ROOT/$dir/$soname"
            agent_needed "$ROOT/$dir/$soname"
            return 0
        fi
    done
    die "qemu-ga needs $soname, which none of ${AGENT_PACKAGES[*]} provides"
}
agent_needed() {        # $1: ELF file; copy every library it names
    local soname
    for soname in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
        agent_lib "$soname"
    done
}
install -D -m 755 "$(agent_path usr/sbin/qemu-ga)" "$ROOT/usr/sbin/qemu-ga"
agent_needed "$ROOT/usr/sbin/qemu-ga"
# The program interpreter, at the path the program names (PT_INTERP).
interp=$(readelf -l "$ROOT/usr/sbin/qemu-ga" | sed -n 's/.*interpreter: \(.*\)\]$/\1/p')
[[ $interp == /* ]] || die "cannot read qemu-ga's program interpreter"
agent_lib "$(basename "$interp")"
if [[ ! -e $ROOT$interp ]]; then
    mkdir -p "$(dirname "$ROOT$interp")"
    ln -s "/lib/x86_64-linux-gnu/$(basename "$interp")" "$ROOT$interp"
fi

cat >"$ROOT/etc/init.d/qemu-ga" <<EOF
#!/bin/sh
# The QEMU guest agent on the virtio-serial port the host names
# $AGENT_PORT.  There is no udev here: the port is found by its
# name in sysfs and given the /dev/virtio-ports/ link udev would make.
#   /etc/init.d/qemu-ga start|stop
NAME=$AGENT_PORT
PIDFILE=/run/qemu-ga.pid
EOF
cat >>"$ROOT/etc/init.d/qemu-ga" <<'EOF'

find_port() {
    for p in /sys/class/virtio-ports/vport*; do
        [ -r "$p/name" ] || continue
        read -r n <"$p/name"
        if [ "$n" = "$NAME" ]; then
            port=/dev/${p##*/}
            return 0
        fi
    done
    return 1
}

running() {
    [ -r $PIDFILE ] && read -r pid <$PIDFILE && [ -d /proc/"$pid" ]
}

case $1 in
start)
    running && exit 0
    # The host announces its ports a little after the driver loads.
    tries=60
    until find_port; do
        if [ $tries -le 0 ]; then
            echo "qemu-ga: no virtio-serial port $NAME"
            exit 1
        fi
        tries=$((tries - 1))
        usleep 50000
    done
    mkdir -p /dev/virtio-ports
    ln -sf "$port" "/dev/virtio-ports/$NAME"
    exec /usr/sbin/qemu-ga --daemonize --method=virtio-serial \
        --path="/dev/virtio-ports/$NAME" --pidfile=$PIDFILE \
        --logfile=/run/qemu-ga.log --statedir=/run
    ;;
stop)
    running || exit 0
    kill "$pid"
    tries=40
    while [ -d /proc/"$pid" ] && [ $tries -gt 0 ]; do
        tries=$((tries - 1))
        usleep 50000
    done
    ! [ -d /proc/"$pid" ]
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
EOF
chmod 755 "$ROOT/etc/init.d/qemu-ga"

# qemu-ga's guest-shutdown runs `/sbin/shutdown -h -P|-H|-r +0 MESSAGE`;
# busybox has poweroff, halt and reboot but no shutdown.
cat >"$ROOT/sbin/shutdown" <<'EOF'
#!/bin/sh
# shutdown(8) for busybox: -P power off (the default), -H halt, -r reboot,
# always at once (a time or message argument is ignored).
action=poweroff
for arg in "$@"; do
    case $arg in
        -P) action=poweroff ;;
        -H) action=halt ;;
        -r) action=reboot ;;
    esac
done
exec /sbin/$action
EOF
chmod 755 "$ROOT/sbin/shutdown"

cat >"$ROOT/etc/profile" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
export PS1='root@tiny:\w# '
umask 022
EOF

# Minimal udhcpc hook so `udhcpc -i eth0` configures a virtio NIC.  Its
# path is compiled into busybox (Debian: /etc/udhcpc/default.script).
UDHCPC_SCRIPT=$(grep -a -o -m1 '/[a-z/]*udhcpc/default\.script' "$BUSYBOX" || true)
UDHCPC_SCRIPT=${UDHCPC_SCRIPT:-/usr/share/udhcpc/default.script}
mkdir -p "$ROOT/${UDHCPC_SCRIPT%/*}"
cat >"$ROOT/$UDHCPC_SCRIPT" <<'EOF'
#!/bin/sh
# udhcpc event hook: apply the lease to $interface.
case $1 in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
        : >/etc/resolv.conf
        [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
        ;;
esac
exit 0
EOF
chmod 755 "$ROOT/$UDHCPC_SCRIPT"

echo "$GUEST_HOSTNAME" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost\n' "$GUEST_HOSTNAME" >"$ROOT/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
printf '/dev/root\t/\text4\trw\t0 1\n' >"$ROOT/etc/fstab"
cat >"$ROOT/etc/os-release" <<'EOF'
NAME="Tiny Linux"
PRETTY_NAME="Tiny Linux 1"
ID=tiny
VERSION_ID=1
VERSION="1"
EOF

# --- 6. Disk image -----------------------------------------------------------
# Partition a sparse raw image, write both file systems at their offsets,
# install syslinux, then convert to a thin qcow2.
log "building disk.qcow2"
RAW=$WORK/disk.raw
truncate -s $((DISK_SECTORS * SECTOR)) "$RAW"

# MBR: partition 1 FAT16 (LBA, type 0e) marked active for the syslinux MBR
# code, partition 2 Linux.
sfdisk --quiet --no-reread --no-tell-kernel "$RAW" <<EOF
label: dos
unit: sectors
start=$P1_START, size=$P1_SECTORS, type=e, bootable
start=$P2_START, size=$P2_SECTORS, type=83
EOF
# syslinux MBR boot code: first 440 bytes only, keeping the partition table.
dd if="$SYSLINUX_MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none

# Partition 1.  -h: hidden sectors = partition start, which the syslinux
# boot sector uses to locate ldlinux.sys on the disk.
# (mkfs.fat warns that the file is larger than the file system: expected.)
mkfs.fat -F 16 -n TINYBOOT -h $P1_START --offset $P1_START \
    "$RAW" $((P1_SECTORS * SECTOR / 1024)) 2>&1 >/dev/null |
    { grep -v 'block count mismatch' >&2 || true; }
cat >"$WORK/syslinux.cfg" <<EOF
# Boot straight into Tiny Linux; output on the first serial port as well as
# on the video console.
SERIAL 0 115200
DEFAULT tiny
PROMPT 0
TIMEOUT 0
LABEL tiny
    LINUX /vmlinuz
    INITRD /initrd.img
    APPEND $KERNEL_ARGS
EOF
export MTOOLS_SKIP_CHECK=1
fat="$RAW@@$((P1_START * SECTOR))"
mcopy -i "$fat" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/syslinux.cfg" ::/
# Writes the boot sector and copies ldlinux.sys + ldlinux.c32 via mtools.
syslinux --install --offset $((P1_START * SECTOR)) "$RAW"

# Partition 2: ext4 populated from the tree.  Inode tables and journal are
# zeroed now (not lazily by the guest kernel at first mount, which would
# cost guest CPU and grow overlays); on a sparse file this stays cheap.
# nodiscard: the image is sparse already; don't let mke2fs discard
# (hole-punch) ranges of a file that holds more than this file system.
mke2fs -q -F -t ext4 -L tiny-root -d "$ROOT" \
    -E offset=$((P2_START * SECTOR)),nodiscard,lazy_itable_init=0,lazy_journal_init=0 \
    "$RAW" $((P2_SECTORS * SECTOR / 1024))k

qemu-img convert -f raw -O qcow2 "$RAW" "$WORK/disk.qcow2"

# --- 7. Publish --------------------------------------------------------------
cat >"$WORK/manifest.json" <<EOF
{"kernel":"vmlinuz","ramdisk":"initrd.img","disk":"disk.qcow2","kernel_version":"$KREL","args":"$KERNEL_ARGS","kernel_package":"$kpkg","kernel_package_version":"$kver","agent_package_version":"$AGENT_VERSION"}
EOF
for f in vmlinuz initrd.img disk.qcow2 manifest.json; do
    mv -f "$WORK/$f" "$OUTDIR/$f"
done
log "done: $OUTDIR (kernel $KREL, initrd $(du -k "$OUTDIR/initrd.img" | cut -f1) KiB," \
    "disk $(du -k "$OUTDIR/disk.qcow2" | cut -f1) KiB allocated)"
