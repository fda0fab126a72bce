/* disk_probe.h: a disk image file brought in from outside (an upload,
 * a member of an OVA) checked before QEMU reads it for an import.
 * Blocking (runs qemu-img): for a worker thread.
 *
 * The point is safety: an image format may name other files (a vmdk
 * descriptor's extents, a qcow2 backing file or external data file), and
 * converting such an image would read them from this host. Only images
 * that are whole in themselves pass. */
#ifndef XN_STORAGE_DISK_PROBE_H
#define XN_STORAGE_DISK_PROBE_H

#include <stdint.h>

#include "util/err.h"

/* The QEMU format of the image at path ("raw", "qcow2", "vpc", "vmdk"):
 * want's if given ("vhd" is accepted for "vpc"), else found from its
 * first bytes (raw when none match); *size gets its virtual size.
 * Refused with IMPORT_ERROR_GENERIC: a vmdk that is a text descriptor or
 * has an extent other than the file itself, a qcow2 with a backing or
 * data file, anything qemu-img cannot open; VDI_INCOMPATIBLE_TYPE for a
 * format name this host does not import. */
const char *xn_disk_probe(const char *path, const char *want, int64_t *size, xn_error **err);

#endif
