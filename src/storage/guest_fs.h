/* guest_fs.h: files read out of the ext2/3/4 file systems of a guest's
 * disk image without mounting it (the PV bootloader's view of a guest's
 * /boot). The image is served by a private read-only qemu-nbd (any
 * format QEMU opens, local or on NFS); its MBR or GPT partition table is
 * read, and every partition (or the whole disk) holding an ext file
 * system is opened with libext2fs through an I/O manager that reads over
 * NBD, so nothing but the blocks looked at is read.
 *
 * Blocking: for a worker thread. The disk's content is untrusted: paths
 * resolve inside the file system they start in (symlinks included,
 * libext2fs bounds their nesting), only regular files are read, sizes
 * are bounded by the caller, and damage is an error, never a crash. */
#ifndef XN_STORAGE_GUEST_FS_H
#define XN_STORAGE_GUEST_FS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct xn_guest_disk xn_guest_disk;

/* Open image (a path or URL) of QEMU format `format` read-only; NULL
 * with err when qemu-nbd cannot serve it. A disk with no ext file system
 * opens, with none to read (xn_guest_disk_nfs() == 0). */
xn_guest_disk *xn_guest_disk_open(const char *image, const char *format, xn_error **err);
/* Close the file systems and the NBD connection (qemu-nbd exits). NULL ok. */
void xn_guest_disk_close(xn_guest_disk *g);
/* How many ext file systems the disk holds, in partition order. */
size_t xn_guest_disk_nfs(const xn_guest_disk *g);
/* A name for file system i in messages: "partition 2", "the whole disk". */
const char *xn_guest_disk_fs_name(const xn_guest_disk *g, size_t i);

/* Whether path names a regular file in file system i; dir (may be NULL:
 * the root) is where a relative path starts. */
bool xn_guest_disk_is_file(xn_guest_disk *g, size_t i, const char *dir, const char *path);
/* The whole regular file path of file system i (caller frees; a NUL
 * follows the *len bytes), NULL with err if missing, not a regular file,
 * larger than max bytes or unreadable. */
char *xn_guest_disk_read(xn_guest_disk *g, size_t i, const char *dir, const char *path,
			 uint64_t max, size_t *len, xn_error **err);
/* Append the regular file path of file system i to fd; *budget bytes
 * at most (what is written is taken off it). */
int xn_guest_disk_copy(xn_guest_disk *g, size_t i, const char *dir, const char *path, int fd,
		       uint64_t *budget, xn_error **err);

#endif
