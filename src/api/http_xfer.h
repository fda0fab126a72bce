/* http_xfer.h: what the streamed transfer routes share (disk images in
 * storage/vdi_transfer.c, XVA exports and imports in vm/): who the
 * caller is, the task a transfer runs under, its progress, and errors
 * answered as xapi's HTTP handlers answer them. */
#ifndef XN_HTTP_XFER_H
#define XN_HTTP_XFER_H

#include "api/api.h"

/* The caller's role: session_id's, or pool-admin on the local socket
 * without one (as xapi's local socket). -1 with the error if none. */
int xn_xfer_role(xn_host *h, xn_http_req *req, xn_error **err);
/* The task the transfer runs under: task_id's (a pending task), or a
 * new one named label. Caller frees; NULL with the error. */
char *xn_xfer_task(xn_host *h, xn_http_req *req, const char *label, xn_error **err);
/* "task-id: <task>\r\n" for extra headers (NULL for no task); caller frees. */
char *xn_xfer_task_header(const char *task);
/* Answer a XenAPI error as xapi writes one, ["CODE", params...], with an
 * HTTP status that fits the code and the task-id header. */
void xn_xfer_answer_error(xn_http_req *req, const char *task, const xn_error *err);
/* Commit a task's progress (0 to 1); failures are only logged. */
void xn_xfer_progress(xn_host *h, const char *task, double progress);

/* The error of an upload whose client went away after received bytes. */
xn_error *xn_xfer_cut_short(int64_t received);
/* The end of a VM import: settle task (result: the VM ref set, or err)
 * and, if req is still there, answer it: the error, or 200 with the
 * VM's ref as the body. err is borrowed. */
void xn_xfer_finish_vm(xn_host *h, xn_http_req *req, const char *task, const xn_error *err,
		       const char *vm);

#endif
