/* storage.h: storage repositories and their VDIs.
 *
 * Each SR type is a driver, a table of operations (xn_sr_ops); this
 * issue has one, "file": a directory of qcow2 images, the host's default
 * "Local storage". A VDI's `location` is its uuid; the driver maps it to
 * what QEMU opens. Clones are qcow2 overlays of their source (instant,
 * independent of disk size). Blocking work (qemu-img) runs as child
 * processes; the loop never waits. */
#ifndef XN_STORAGE_H
#define XN_STORAGE_H

#include "host/host.h"

typedef void (*xn_storage_done)(void *ud, xn_error *err /* taken over by the callee */);

typedef struct xn_sr_ops {
	const char *type;
	/* Path or URL QEMU opens for a VDI location (caller frees). */
	char *(*vdi_path)(xn_host *h, const char *sr_ref, const char *location);
	/* Create location as a copy-on-write overlay of src_location, whose
	 * virtual size is size. */
	void (*vdi_clone)(xn_host *h, const char *sr_ref, const char *src_location,
			  const char *location, int64_t size, xn_storage_done done, void *ud);
	/* Create an empty image of size bytes. */
	void (*vdi_create)(xn_host *h, const char *sr_ref, const char *location, int64_t size,
			   xn_storage_done done, void *ud);
	/* Remove the image (no error if it is already gone). */
	int (*vdi_destroy)(xn_host *h, const char *sr_ref, const char *location, xn_error **err);
} xn_sr_ops;

extern const xn_sr_ops xn_sr_file_ops;

/* Ensure the local SR exists, its directory too; drop image files that
 * no VDI record claims (left by an operation a crash interrupted). */
int xn_storage_init(xn_host *h, xn_error **err);
const xn_sr_ops *xn_sr_ops_of(xn_host *h, const char *sr_ref);
/* The image path of a VDI (caller frees), NULL if it has none. */
char *xn_vdi_path(xn_host *h, const char *vdi_ref);
/* Directory of a file SR (caller frees). */
char *xn_sr_file_dir(xn_host *h, const char *sr_ref);

/* Import an image file into an SR as a new VDI record added to cs
 * (start-up path, synchronous). Returns the VDI ref (borrowed from cs). */
const char *xn_vdi_import_sync(xn_host *h, xn_changes *cs, const char *sr_ref,
			       const char *src, const char *name, xn_error **err);

/* Create the built-in templates that are missing (first start). */
int xn_templates_init(xn_host *h, xn_error **err);


#endif
