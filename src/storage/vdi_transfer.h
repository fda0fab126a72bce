/* vdi_transfer.h: disk images in and out of VDIs over HTTP, as xapi
 * serves them:
 *
 *   PUT /import_raw_vdi?session_id=S&vdi=<ref|uuid>&format=raw|qcow2|vhd[&task_id=T]
 *       the image is the request body (Content-Length or chunked);
 *   GET /export_raw_vdi?session_id=S&vdi=<ref|uuid>&format=raw|qcow2|vhd[&task_id=T]
 *       the image is the response body.
 *
 * Both stream: the daemon holds a few MiB of an image at a time, never
 * the whole. Each runs under a task (task_id's, or a new one named in
 * the `task-id` header of the answer, and of the 100 Continue answering
 * "Expect: 100-continue") whose progress follows the bytes. An import
 * writes a new image and switches the VDI to it only once it is
 * complete: a failed or interrupted import leaves the disk as it was. */
#ifndef XN_VDI_TRANSFER_H
#define XN_VDI_TRANSFER_H

#include "host/host.h"

/* Register the two routes; remove what transfers cut short by a crash
 * left in DATA/transfer (temporary files in SR directories are
 * collected by the SR garbage collector). */
int xn_vdi_transfer_init(xn_host *h, xn_error **err);

#endif
