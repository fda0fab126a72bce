/* p2v.h: a Linux root file system (a tar of it: a directory, a tarball,
 * a machine read over ssh) made into a bootable disk image for a new VM.
 * Blocking: for a worker thread (vm_import_image.c runs it).
 *
 * The tar is unpacked into a private staging directory (libarchive,
 * never following a link: members with absolute paths or `..`, and
 * members that would be written through a symbolic link, refuse the
 * whole tar; device nodes are skipped, devtmpfs makes them), the guest's
 * /etc/fstab and the root= of its bootloader configuration are pointed
 * at /dev/vda, and `mke2fs -d` writes the tree into a new ext4 image
 * sized to fit (no loop mounts). The VM boots its own kernel and initrd
 * from /boot when it has one, else the host's built-in kernel. */
#ifndef XN_VM_P2V_H
#define XN_VM_P2V_H

#include <jansson.h>

#include "util/err.h"

/* Build dir/disk.raw from the tar at tar; kernels, if the guest has
 * them, are copied into boot_dir (made). Returns {"image", "size",
 * "kernel", "ramdisk", "args"} (kernel and ramdisk may be absent) or
 * NULL with IMPORT_ERROR_GENERIC. */
json_t *xn_p2v_build(const char *tar, const char *dir, const char *boot_dir, xn_error **err);

/* The root= argument the VM is given: the whole disk, ext4, no partitions. */
#define XN_P2V_ROOT "/dev/vda"

#endif
