/* xva.h: VMs out of and into this host as XVA archives (xenapi.md §5),
 * xapi's format: `xe vm-export` and `xe vm-import`.
 *
 *   GET /export?session_id=S&(uuid=U|ref=R)[&task_id=T][&use_compression=true|gzip|zstd]
 *   GET /export_metadata?...                  the same, ova.xml only
 *   PUT /import?session_id=S[&sr_id=R|&sr_uuid=U][&task_id=T][&restore=true]
 *   PUT /import_metadata?...                  a VM whose disks are here already
 *
 * Export (vm_export.c) describes the VM in ova.xml (xva_header.c) and
 * streams its disks; import (vm_import.c) reads ova.xml, checks it,
 * makes a new image for each disk, streams the data into them, and only
 * then records the VM, its disks and NICs in one commit: a failed or
 * cut-short import leaves nothing (its images are removed; after a crash
 * the SR's collector removes them). The bytes move on a worker thread
 * (storage/xva_stream.h). */
#ifndef XN_VM_XVA_H
#define XN_VM_XVA_H

#include "api/api.h"

/* Register the four routes. */
void xn_xva_register(xn_host *h);
void xn_vm_export_register(xn_host *h);
void xn_vm_import_register(xn_host *h);
/* PUT /import_image: a VM from a bare disk image or an OVA (vm_import_image.c). */
void xn_vm_import_image_register(xn_host *h);

/* The SR an import's disks go to: the request's sr_id or sr_uuid, else
 * the pool's default SR; it must be writable. Caller frees. */
char *xn_import_sr(xn_host *h, xn_http_req *req, xn_error **err);

/* ---- ova.xml (xva_header.c) -------------------------------------------- */

/* The XVA format version written, and the newest one read. */
#define XN_XVA_EXPORT_VSN 2

/* ova.xml describing vm: the VM, its VBDs and their VDIs and SRs, its
 * VIFs and their networks, every reference rewritten to the "Ref:N" ids
 * of the archive (xapi's rules: halted, no operations, no snapshots).
 * *disks gets [[VDI ref, "Ref:N"], ...], the disks whose data follows,
 * in the order of their ids. Caller frees. */
char *xn_xva_header_build(xn_host *h, const char *vm, json_t **disks);
/* Parse ova.xml (one XML-RPC value) into {version, objects}: new
 * reference, or NULL with IMPORT_ERROR_GENERIC. */
json_t *xn_xva_header_parse(const char *xml, size_t len, xn_error **err);

/* An import's plan: what ova.xml asks for, checked against this host. */
typedef struct xn_xva_plan xn_xva_plan;
/* Check a parsed header for an import into sr: one VM, a format this
 * host reads (IMPORT_INCOMPATIBLE_VERSION), disks that fit the SR
 * (SR_FULL), and with preserve no uuid that exists here already; with
 * metadata, every disk must exist here (by uuid). header is borrowed. */
xn_xva_plan *xn_xva_plan_new(xn_host *h, json_t *header, const char *sr, bool preserve,
			     bool metadata, xn_error **err);
/* The disks whose data follows in the archive: their ids and sizes. */
size_t xn_xva_plan_ndisks(const xn_xva_plan *p);
const char *xn_xva_plan_disk(const xn_xva_plan *p, size_t i, int64_t *size);
/* The location of disk i's new image on the plan's SR. */
void xn_xva_plan_set_location(xn_xva_plan *p, size_t i, const char *location);
/* Record everything in one commit: the new VM's ref (caller frees). */
char *xn_xva_plan_commit(xn_xva_plan *p, xn_error **err);
void xn_xva_plan_free(xn_xva_plan *p);

#endif
