/* storage.h: storage repositories (SRs) and their disks (VDIs).
 *
 * Each SR type is a driver, a table of operations (xn_sr_ops): "file"
 * (a local directory of qcow2 images, the host's default "Local
 * storage"), "nfs" (an NFS export reached from userspace: libnfs in the
 * daemon, QEMU's own nfs:// driver for the disks) and "iso" (a directory
 * or NFS export of ISO images, read-only VDIs for CD drives).
 *
 * A driver only knows files: it names them for QEMU and qemu-img, lists,
 * removes and locks them. Everything about images (thin qcow2, linked
 * clones as overlays, snapshots, copies, chains and their coalescing)
 * is generic, built on qemu-img and QMP over the names a driver gives
 * (vdi.c, chain.c). A VDI's `location` is its image's file name without
 * ".qcow2" (a uuid) or, for files of other kinds (ISO images, ".state"
 * suspend images), the whole file name.
 *
 * Driver functions marked "blocking" run on the libuv thread pool with
 * an xn_sr_conf, a copy of what they need taken on the loop thread: they
 * never touch the database. */
#ifndef XN_STORAGE_H
#define XN_STORAGE_H

#include "api/api.h"
#include "host/host.h"

typedef void (*xn_storage_done)(void *ud, xn_error *err /* taken over by the callee */);

/* What a driver needs to reach one SR (thread-safe copy). */
typedef struct xn_sr_conf {
	char *ref, *uuid, *type;
	json_t *device_config;   /* owned copy */
	char *dir;               /* file and iso: the directory, else NULL */
} xn_sr_conf;

typedef struct xn_sr_ops {
	const char *type;
	const char *content_type;  /* default content_type: "user", "iso" */
	bool shared;               /* reachable from every host of a pool */
	bool read_only;            /* the SR's files are never written (iso) */
	/* Check device_config and that the SR can be reached; create what
	 * an empty SR needs (file: its directory). Blocking. */
	int (*attach)(const xn_sr_conf *c, xn_error **err);
	/* The QEMU blockdev protocol node that opens file (new reference,
	 * without node-name), e.g. {"driver":"file","filename":...}. */
	json_t *(*node)(const xn_sr_conf *c, const char *file);
	/* What qemu-img opens for file: a path or a URL (caller frees). */
	char *(*url)(const xn_sr_conf *c, const char *file);
	/* The SR's files as {name: {"size": bytes allocated}}. Blocking. */
	int (*list)(const xn_sr_conf *c, json_t **files, xn_error **err);
	/* Remove file; a file already gone is not an error. Blocking. */
	int (*remove)(const xn_sr_conf *c, const char *file, xn_error **err);
	/* Total and free bytes of the SR's space. Blocking. */
	int (*space)(const xn_sr_conf *c, int64_t *total, int64_t *free, xn_error **err);
	/* Take an exclusive lock on file for owner (a host and VM), held
	 * across hosts; VDI_IN_USE if someone else holds it. NULL for SRs
	 * whose files QEMU locks itself. Blocking. */
	int (*lock)(const xn_sr_conf *c, const char *file, const char *owner, xn_error **err);
	/* Release owner's lock on file; a lock someone else holds, or none,
	 * is left as it is. Blocking. */
	int (*unlock)(const xn_sr_conf *c, const char *file, const char *owner, xn_error **err);
} xn_sr_ops;

extern const xn_sr_ops xn_sr_file_ops;
extern const xn_sr_ops xn_sr_iso_ops;
extern const xn_sr_ops xn_sr_nfs_ops;
/* ISO libraries on NFS (location=server:/path); xn_sr_iso_ops hands
 * over to these when the SR is not a local directory. */
extern const xn_sr_ops xn_sr_iso_nfs_ops;

/* ---- SRs (storage.c) ------------------------------------------------- */

/* Ensure the local SR exists, its directory too; attach the other SRs
 * this host has PBDs for; drop image files that nothing claims (left by
 * an operation a crash interrupted). */
int xn_storage_init(xn_host *h, xn_error **err);
/* SR.* and VDI.* messages, and the storage HTTP routes. */
void xn_storage_register(xn_api *api);
const xn_sr_ops *xn_sr_ops_of(xn_host *h, const char *sr_ref);
const xn_sr_ops *xn_sr_ops_by_type(const char *type);
/* A copy of what the driver needs for sr_ref (NULL if the SR has no
 * driver). Free with xn_sr_conf_free (accepts NULL). */
xn_sr_conf *xn_sr_conf_get(xn_host *h, const char *sr_ref);
/* The config of an SR of type with uuid and device_config (copied, may
 * be NULL), before it has records (ref ""). */
xn_sr_conf *xn_sr_conf_new(xn_host *h, const char *type, const char *uuid,
			   json_t *device_config);
void xn_sr_conf_free(xn_sr_conf *c);
/* Run a blocking driver call on the thread pool: work(c, ud, &err)
 * there, then done(ud, err) on the loop (err taken over by done). */
typedef int (*xn_sr_work_fn)(const xn_sr_conf *c, void *ud, xn_error **err);
void xn_sr_work(xn_host *h, const char *sr_ref, xn_sr_work_fn work, void *ud,
		xn_storage_done done);
/* Attach (PBD.plug) every PBD of sr_ref on this host in the background;
 * currently_attached follows the outcome. */
void xn_sr_plug_all(xn_host *h, const char *sr_ref);
/* SR.scan: VDIs whose files are gone are forgotten, an ISO library's
 * new files become VDIs, sizes are refreshed; then done (may be NULL). */
void xn_sr_scan(xn_host *h, const char *sr_ref, xn_storage_done done, void *ud);
/* The same with a config of an SR that has no records yet (taken over). */
void xn_sr_work_on(xn_host *h, xn_sr_conf *conf, xn_sr_work_fn work, void *ud,
		   xn_storage_done done);
/* Refresh physical_size, physical_utilisation and virtual_allocation
 * of an SR in the background. */
void xn_sr_update_sizes(xn_host *h, const char *sr_ref);

/* The file name of a location ("<uuid>" -> "<uuid>.qcow2"). Caller frees. */
char *xn_location_file(const char *location);
/* The path or URL qemu-img opens for location on sr_ref, and the
 * blockdev protocol node QEMU opens it with (caller frees / new
 * reference); NULL if the SR has no driver. */
char *xn_location_url(xn_host *h, const char *sr_ref, const char *location);
json_t *xn_location_node(xn_host *h, const char *sr_ref, const char *location);
/* The image path or URL of a VDI for qemu-img (caller frees), NULL if
 * it has none. */
char *xn_vdi_path(xn_host *h, const char *vdi_ref);
/* The blockdev protocol node of a VDI for QEMU (new reference), NULL
 * if it has none. */
json_t *xn_vdi_node(xn_host *h, const char *vdi_ref);
/* The image format of a VDI: "qcow2", or "raw" for ISO images. */
const char *xn_vdi_format(xn_host *h, const char *vdi_ref);
/* Directory of a file SR (caller frees). */
char *xn_sr_file_dir(xn_host *h, const char *sr_ref);

/* Import an image file into an SR as a new VDI record added to cs
 * (start-up path, synchronous). Returns the VDI ref (borrowed from cs). */
const char *xn_vdi_import_sync(xn_host *h, xn_changes *cs, const char *sr_ref,
			       const char *src, const char *name, xn_error **err);

/* ---- the toolstack's lock on disks of shared SRs (lock.c) ------------ */

/* The lock a VM holds on a VDI it opens writable, as {"sr", "file",
 * "owner"} (new reference), or NULL when the VDI's SR needs none
 * (QEMU locks local image files itself). vm_ref NULL: the lock a
 * VDI.destroy takes, so that no other host has the disk open. */
json_t *xn_vdi_lock_key(xn_host *h, const char *vdi_ref, const char *vm_ref);
/* Take it (VDI_IN_USE naming the holder if another VM or host has it);
 * calls run one at a time, in order. */
void xn_vdi_lock(xn_host *h, json_t *key, xn_storage_done done, void *ud);
/* Release it in the background, after the calls made before (errors are
 * logged; a lock someone else holds is left alone). */
void xn_vdi_unlock(xn_host *h, json_t *key);

/* ---- images (vdi.c): qemu-img in child processes, never on the loop -- */

/* Create an empty thin image of size bytes at location on sr. */
void xn_image_create(xn_host *h, const char *sr_ref, const char *location, int64_t size,
		     xn_storage_done done, void *ud);
/* The name an overlay's header gives its backing image location on sr
 * (caller frees): the bare file name on local SRs, so the directory can
 * move; the whole URL on NFS, where QEMU cannot resolve relative names
 * (it would look for them under the overlay's own path). */
char *xn_backing_name(xn_host *h, const char *sr_ref, const char *location);
/* Create location on sr as a copy-on-write overlay of backing (a
 * location on the same SR) with virtual size size. */
void xn_image_overlay(xn_host *h, const char *sr_ref, const char *backing,
		      const char *location, int64_t size, xn_storage_done done, void *ud);
/* Copy a VDI's whole content (its chain flattened) into a new image at
 * location on sr_ref. */
void xn_image_copy(xn_host *h, const char *vdi_ref, const char *sr_ref, const char *location,
		   xn_storage_done done, void *ud);
/* Remove location's file from sr in the background (errors are logged;
 * a file left behind is collected later). */
void xn_image_remove(xn_host *h, const char *sr_ref, const char *location);

/* Locations being written by an operation in progress: the garbage
 * collector leaves them alone until released. */
void xn_storage_hold(xn_host *h, const char *sr_ref, const char *location);
void xn_storage_release(xn_host *h, const char *sr_ref, const char *location);

bool xn_storage_held(const char *sr_ref, const char *location);

/* Forget vdi in cs (the caller sees to its VBDs): returns true if its
 * image is to be removed once cs is committed (xn_image_remove), false
 * if other images are based on it and it stays as a hidden base copy. */
bool xn_vdi_forget(xn_host *h, xn_changes *cs, const char *vdi);
void xn_vdi_register(xn_api *api);

/* The record of a new, independent disk copied from vdi_ref, whose
 * image is location on sr_ref (new reference; relations, snapshot and
 * chain fields reset). */
json_t *xn_vdi_record_copy(xn_host *h, const char *vdi_ref, const char *sr_ref,
			   const char *location);

/* Clones and snapshots of one disk, in steps so that a VM's disks can be
 * forked together and recorded in one commit:
 *   new (checks) -> prepare (makes the image files) -> apply (adds the
 *   records to the caller's change-set) -> the caller commits -> switch
 *   (a running VM moves to its disk's new image) -> free.
 * After a failed prepare nothing is left; after a failed commit, call
 * abort. A failed switch undoes the fork's records itself. */
typedef struct xn_vdi_fork xn_vdi_fork;
xn_vdi_fork *xn_vdi_fork_new(xn_host *h, const char *vdi_ref, bool snapshot, xn_error **err);
void xn_vdi_fork_prepare(xn_vdi_fork *f, xn_storage_done done, void *ud);
/* Add the new VDI (fields override the source's, may be NULL) and the
 * source's changes to cs; returns the new VDI's ref (owned by f). */
const char *xn_vdi_fork_apply(xn_vdi_fork *f, xn_changes *cs, json_t *fields);
void xn_vdi_fork_abort(xn_vdi_fork *f);
void xn_vdi_fork_switch(xn_vdi_fork *f, xn_storage_done done, void *ud);
const char *xn_vdi_fork_ref(const xn_vdi_fork *f);
void xn_vdi_fork_free(xn_vdi_fork *f);

/* A VBD through which a VM with a running QEMU uses vdi (borrowed), or
 * NULL: only writable ones with XN_VBD_RW, only currently attached ones
 * with XN_VBD_ATTACHED. */
enum { XN_VBD_RW = 1, XN_VBD_ATTACHED = 2 };
const char *xn_vdi_open_vbd(xn_host *h, const char *vdi_ref, unsigned flags);
/* The location vdi's image is based on (borrowed), NULL if none. */
const char *xn_vdi_parent(xn_host *h, const char *vdi_ref);
/* The VDI of sr whose image is location (borrowed ref), or NULL. */
const char *xn_vdi_by_location(xn_host *h, const char *sr_ref, const char *location);
/* How many VDIs' images are based on vdi's; *only gets one of them. */
size_t xn_vdi_children(xn_host *h, const char *vdi_ref, const char **only);

/* ---- chains (chain.c) ------------------------------------------------ */

/* Most images in one chain (a disk, its snapshots' frozen layers and the
 * template it was cloned from): past this a snapshot or clone fails with
 * SR_BACKEND_FAILURE_109 "The snapshot chain is too long". */
#define XN_CHAIN_MAX 30

/* The garbage collection pass of xn_sr_gc_kick, synchronously, at start
 * (nothing else runs yet): unclaimed Xenia-made files are removed. */
int xn_sr_gc_sync(xn_host *h, const char *sr_ref, xn_error **err);

/* Before a VDI is attached writable: an image other images are based on
 * (a template's or snapshot's disk) is never written; the VDI gets a
 * fresh overlay as its own image first ("leaf split"). Then done(ud,
 * err). Also refuses (VDI_IN_USE) a VDI already attached writable to a
 * running VM, or any attachment while it is written by one. */
void xn_vdi_prepare_attach(xn_host *h, const char *vdi_ref, bool writable,
			   xn_storage_done done, void *ud);

/* Schedule a garbage-collection and coalesce pass on an SR soon (after
 * a snapshot or disk was deleted). */
void xn_sr_gc_kick(xn_host *h, const char *sr_ref);

/* Create the built-in templates that are missing (first start). */
int xn_templates_init(xn_host *h, xn_error **err);

#endif
