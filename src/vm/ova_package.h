/* ova_package.h: an OVA (a tar holding one .ovf descriptor, an optional
 * .mf manifest and the disk files) unpacked into a private directory,
 * checked on the way. Blocking: for a worker thread.
 *
 * Only plain members at the top of the archive are taken: a member with
 * a directory part, "..", a link or a device refuses the package (an
 * OVA has none), so nothing is ever written outside the directory. With
 * a manifest, every member but the manifest and a certificate must be
 * listed in it with a matching SHA-1 or SHA-256 digest. */
#ifndef XN_VM_OVA_PACKAGE_H
#define XN_VM_OVA_PACKAGE_H

#include "util/err.h"

/* Unpack ova into dir (which exists, empty); *ovf gets the descriptor's
 * member name (caller frees). IMPORT_ERROR_GENERIC on any bad input. */
int xn_ova_unpack(const char *ova, const char *dir, char **ovf, xn_error **err);

#endif
