/* vm_export.c: GET /export and GET /export_metadata (xva.h).
 *
 * A halted or suspended VM, a template or a snapshot (of a running VM
 * too: its disks are frozen images) goes out as an XVA: the answer is
 * 200 with the task's id in a header and no length, and its body is the
 * archive the worker thread writes into a pipe (xva_stream.h), read here
 * and queued on the connection, reading paused while the client lags.
 * The VM records "export" in its current_operations meanwhile, so it is
 * not started under the reader. A failure after the answer has begun
 * cuts the body short (the client sees a truncated archive) and fails
 * the task with the reason. */
#include "vm/xva.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/http_xfer.h"
#include "storage/storage.h"
#include "storage/xva_stream.h"
#include "util/log.h"
#include "vm/vm_runtime.h"

#define READ_SIZE (256u << 10)
#define PROGRESS_MS 500

struct export {
	xn_host *h;
	xn_http_req *req;          /* NULL once the client is gone */
	char *vm, *task;
	bool marked;               /* "export" is in the VM's current_operations */
	xn_xva_job *job;
	uv_pipe_t pipe;            /* the archive, from the thread */
	bool pipe_open, reading, thread_done;
	uv_timer_t timer;
	int64_t total;             /* disk bytes to cover */
	xn_error *err;
};

static void timer_closed(uv_handle_t *t)
{
	struct export *e = t->data;
	free(e->vm);
	free(e->task);
	xn_error_free(e->err);
	free(e);
}

static void fail(struct export *e, xn_error *err)
{
	if (e->err)
		xn_error_free(err);
	else
		e->err = err;
}

/* The end, once the thread has ended and the pipe is closed. */
static void maybe_end(struct export *e)
{
	if (!e->thread_done || e->pipe_open)
		return;
	if (e->err)
		xn_info("export: VM %s: %s", xn_db_str(e->h->db, e->vm, "uuid"), e->err->message);
	json_t *result = json_string("");
	xn_changes *cs = xn_changes_new(e->h->db);
	json_t *rec = e->marked ? xn_changes_edit(cs, e->vm) : NULL;
	if (rec) {
		json_object_del(json_object_get(rec, "current_operations"), e->task);
		xn_vm_refresh_allowed(cs, e->vm);
	}
	xn_task_settle(cs, e->task, e->err, result, NULL);
	json_decref(result);
	XN_AUTOERR xn_error *cerr = NULL;
	if (xn_db_commit(e->h->db, cs, &cerr) < 0)
		xn_warn("export: cannot settle task %s: %s", e->task, cerr->message);
	if (e->req)
		xn_http_stream_end(e->req, !e->err);
	e->req = NULL;
	uv_close((uv_handle_t *)&e->timer, timer_closed);
}

static void pipe_closed(uv_handle_t *p)
{
	struct export *e = p->data;
	e->pipe_open = false;
	maybe_end(e);
}

static void close_pipe(struct export *e)
{
	if (e->pipe_open && !uv_is_closing((uv_handle_t *)&e->pipe))
		uv_close((uv_handle_t *)&e->pipe, pipe_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	buf->base = xn_malloc(READ_SIZE);
	buf->len = READ_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct export *e = s->data;
	if (n > 0 && e->req) {
		xn_http_stream_write(e->req, buf->base, (size_t)n); /* takes the buffer */
		if (xn_http_stream_queued(e->req) >= XN_HTTP_STREAM_HIGH) {
			uv_read_stop(s);
			e->reading = false;
		}
		return;
	}
	free(buf->base);
	if (n < 0) /* the end of the archive (or the thread gone): done once it says so */
		close_pipe(e);
}

static void on_drain(void *ud)
{
	struct export *e = ud;
	if (!e->reading && e->pipe_open && !uv_is_closing((uv_handle_t *)&e->pipe)) {
		e->reading = true;
		uv_read_start((uv_stream_t *)&e->pipe, on_alloc, on_read);
	}
}

static void on_gone(void *ud)
{
	struct export *e = ud;
	e->req = NULL;
	xn_error *err = NULL;
	xn_fail(&err, "VDI_IO_ERROR", "the client went away", NULL);
	fail(e, err);
	if (e->job)
		xn_xva_job_abort(e->job);
	close_pipe(e); /* a thread blocked writing wakes with EPIPE */
}

static void on_done(void *ud, xn_error *err)
{
	struct export *e = ud;
	e->job = NULL;
	e->thread_done = true;
	if (err)
		fail(e, err);
	maybe_end(e);
}

static void on_timer(uv_timer_t *t)
{
	struct export *e = t->data;
	if (e->job && e->total > 0)
		xn_xfer_progress(e->h, e->task, (double)xn_xva_job_bytes(e->job) / (double)e->total);
}

/* ---- checks ----------------------------------------------------------------- */

static int find_vm(xn_host *h, xn_http_req *req, char **vm, xn_error **err)
{
	const xn_class *c = xn_model_class("VM");
	const char *ref = xn_http_req_query(req, "ref");
	const char *uuid = xn_http_req_query(req, "uuid");
	if (ref && xn_db_class_of(h->db, ref) == c) {
		*vm = xn_strdup(ref);
		return 0;
	}
	if (ref || !uuid)
		return xn_fail(err, "HANDLE_INVALID", "VM", ref ? ref : "", NULL);
	const char *r = xn_db_ref_by_uuid(h->db, c, uuid);
	if (!r || xn_db_bool(h->db, r, "is_control_domain"))
		return xn_fail(err, "UUID_INVALID", "VM", uuid, NULL);
	*vm = xn_strdup(r);
	return 0;
}

/* No disk may be written by a running VM while it is read. */
static int check_disks(xn_host *h, json_t *disks, xn_error **err)
{
	size_t i;
	json_t *d;
	json_array_foreach(disks, i, d) {
		const char *vdi = json_string_value(json_array_get(d, 0));
		if (xn_vdi_open_vbd(h, vdi, XN_VBD_RW))
			return xn_fail(err, "VDI_IN_USE", vdi, "export", NULL);
	}
	return 0;
}

static int compression(xn_http_req *req, const char **out, xn_error **err)
{
	const char *c = xn_http_req_query(req, "use_compression");
	*out = NULL;
	if (!c || strcmp(c, "false") == 0)
		return 0;
	if (strcmp(c, "true") == 0 || strcmp(c, "gzip") == 0)
		*out = "gzip";
	else if (strcmp(c, "zstd") == 0)
		*out = "zstd";
	else
		return xn_fail(err, "INVALID_VALUE", "use_compression", c, NULL);
	return 0;
}

/* "export" in the VM's current_operations under the task. */
static int mark(struct export *e, xn_error **err)
{
	if (xn_vm_check_op(e->vm, xn_db_get(e->h->db, e->vm), "export", err) < 0)
		return -1;
	xn_changes *cs = xn_changes_new(e->h->db);
	json_t *ops = json_object_get(xn_changes_edit(cs, e->vm), "current_operations");
	json_object_set_new(ops, e->task, json_string("export"));
	xn_vm_refresh_allowed(cs, e->vm);
	if (xn_db_commit(e->h->db, cs, err) < 0)
		return -1;
	e->marked = true;
	return 0;
}

/* ---- start ------------------------------------------------------------------- */

static xn_xva_disk *disk_list(struct export *e, json_t *disks, size_t *n)
{
	*n = json_array_size(disks);
	xn_xva_disk *d = xn_calloc(*n ? *n : 1, sizeof(*d));
	for (size_t i = 0; i < *n; i++) {
		const char *vdi = json_string_value(json_array_get(json_array_get(disks, i), 0));
		d[i].prefix = (char *)json_string_value(json_array_get(json_array_get(disks, i), 1));
		d[i].image = xn_vdi_path(e->h, vdi);
		d[i].format = (char *)xn_vdi_format(e->h, vdi);
		d[i].size = xn_db_int(e->h->db, vdi, "virtual_size");
		e->total += d[i].size;
	}
	return d;
}

/* Begin the answer and the thread that writes the archive. */
static int start(struct export *e, const char *xml, json_t *disks, const char *compress,
		 xn_error **err)
{
	int fd;
	if (xn_xva_pipe(e->h->loop, &e->pipe, e, true, &fd, err) < 0)
		return -1;
	e->pipe_open = true;
	size_t n;
	xn_xva_disk *d = disk_list(e, disks, &n);
	struct xn_xva_cb cb = {.done = on_done, .ud = e};
	e->job = xn_xva_export_start(e->h->loop, fd, xml, d, n, compress, &cb, err);
	for (size_t i = 0; i < n; i++)
		free(d[i].image);
	free(d);
	if (!e->job) {
		close_pipe(e);
		e->thread_done = true;
		return -1;
	}
	struct xn_http_stream_cb scb = {.drain = on_drain, .gone = on_gone, .ud = e};
	xn_http_req_stream(e->req, &scb);
	XN_AUTOFREE char *hdr = xn_asprintf("task-id: %s\r\nContent-Disposition: attachment; "
					    "filename=\"export.xva\"\r\n", e->task);
	if (xn_http_stream_begin(e->req, 200, "application/octet-stream", -1, hdr) == 0)
		on_drain(e);
	uv_timer_start(&e->timer, on_timer, PROGRESS_MS, PROGRESS_MS);
	return 0;
}

static int prepare(struct export *e, bool metadata, xn_error **err)
{
	int role = xn_xfer_role(e->h, e->req, err);
	if (role < 0)
		return -1;
	if (role < XN_ROLE_VM_ADMIN)
		return xn_fail(err, "RBAC_PERMISSION_DENIED", "http/get_export",
			       "the role of this session does not allow the call", NULL);
	const char *compress;
	if (find_vm(e->h, e->req, &e->vm, err) < 0 || compression(e->req, &compress, err) < 0)
		return -1;
	e->task = xn_xfer_task(e->h, e->req, "export", err);
	if (!e->task || mark(e, err) < 0)
		return -1;
	json_t *disks = NULL;
	XN_AUTOFREE char *xml = xn_xva_header_build(e->h, e->vm, &disks);
	if (metadata)
		json_array_clear(disks);
	int rc = check_disks(e->h, disks, err) < 0 ? -1 : start(e, xml, disks, compress, err);
	json_decref(disks);
	return rc;
}

static void handle(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	struct export *e = xn_calloc(1, sizeof(*e));
	e->h = h;
	e->req = req;
	uv_timer_init(h->loop, &e->timer);
	e->timer.data = e;
	xn_error *err = NULL;
	bool metadata = strcmp(xn_http_req_path(req), "/export_metadata") == 0;
	if (prepare(e, metadata, &err) < 0) {
		xn_xfer_answer_error(req, e->task, err);
		e->req = NULL;
		if (e->task) { /* settle the task, undo the mark */
			e->err = err;
			e->thread_done = true;
			maybe_end(e);
		} else {
			xn_error_free(err);
			uv_close((uv_handle_t *)&e->timer, timer_closed);
		}
	}
}

void xn_vm_export_register(xn_host *h)
{
	xn_api_route_stream(h->api, "GET", "/export", handle, h);
	xn_api_route_stream(h->api, "GET", "/export_metadata", handle, h);
}
