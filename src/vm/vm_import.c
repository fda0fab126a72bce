/* vm_import.c: PUT /import and PUT /import_metadata (xva.h).
 *
 * The body, an XVA (plain, gzip or zstd), goes as it arrives into a
 * pipe that the worker thread reads (xva_stream.h); reading the body
 * pauses while too much waits in the pipe. Steps, top to bottom:
 *   the thread reads ova.xml -> it is parsed and checked (xva_header.c)
 *   -> a new empty image is made for each disk (held from the SR's
 *   collector) -> the thread streams the chunks into them, checksum by
 *   checksum -> one commit records the VM, its disks and NICs.
 * Any failure on the way (a bad header, a checksum, a truncated or
 * damaged archive, a client gone, a full SR) removes the new images and
 * records nothing. The answer comes at the end, 200 or the XenAPI error
 * (as for /import_raw_vdi; the task's id is in the 100 Continue of an
 * "Expect: 100-continue" upload), and the task's result is the new VM
 * (a VM ref set, as xapi's). */
#include "vm/xva.h"

#include <stdlib.h>
#include <string.h>

#include "api/http_xfer.h"
#include "storage/storage.h"
#include "storage/xva_stream.h"
#include "util/log.h"
#include "util/uuid.h"

#define MAX_QUEUED (8 << 20)   /* body bytes waiting for the thread */
#define PROGRESS_MS 500

struct import {
	xn_host *h;
	xn_http_req *req;          /* NULL once answered or gone */
	char *task, *sr;
	bool preserve, metadata;
	xn_xva_job *job;
	uv_pipe_t pipe;            /* the body, to the thread */
	bool pipe_open, body_open, paused, thread_done, answered;
	int64_t queued, received, expect;
	xn_xva_plan *plan;
	char **locs;               /* the new images (held), NULL-terminated */
	int making;                /* images being made */
	char *vm;                  /* the result */
	uv_timer_t timer;
	xn_error *err;
};

struct write {
	uv_write_t w;
	struct import *im;
	char *buf;
	size_t len;
};

static void timer_closed(uv_handle_t *t)
{
	struct import *im = t->data;
	xn_xva_plan_free(im->plan);
	xn_strv_free(im->locs);
	free(im->task);
	free(im->sr);
	free(im->vm);
	xn_error_free(im->err);
	free(im);
}

static void close_pipe(struct import *im);

/* Record the first failure (err taken over) and stop everything. */
static void fail(struct import *im, xn_error *err)
{
	if (im->err) {
		xn_error_free(err);
		return;
	}
	im->err = err;
	im->body_open = false;
	if (im->job)
		xn_xva_job_abort(im->job);
	close_pipe(im);
}

static void remove_images(struct import *im)
{
	for (size_t i = 0; im->locs && im->locs[i]; i++) {
		if (im->err)
			xn_image_remove(im->h, im->sr, im->locs[i]);
		xn_storage_release(im->h, im->sr, im->locs[i]);
	}
	if (im->err && im->locs)
		xn_sr_update_sizes(im->h, im->sr);
}

/* The end, once nothing runs: commit or clean up, settle, answer. */
static void maybe_end(struct import *im)
{
	if (!im->thread_done || im->pipe_open || im->making > 0 || im->answered)
		return;
	im->answered = true;
	if (!im->err && im->plan) {
		im->vm = xn_xva_plan_commit(im->plan, &im->err);
		if (im->vm)
			xn_sr_update_sizes(im->h, im->sr);
	} else if (!im->err) {
		xn_fail(&im->err, "IMPORT_ERROR_GENERIC", "the archive ended before ova.xml", NULL);
	}
	if (im->err)
		xn_info("import: %s", im->err->message);
	remove_images(im);
	xn_xfer_finish_vm(im->h, im->req, im->task, im->err, im->vm);
	im->req = NULL;
	uv_close((uv_handle_t *)&im->timer, timer_closed);
}

static void pipe_closed(uv_handle_t *p)
{
	struct import *im = p->data;
	im->pipe_open = false;
	maybe_end(im);
}

static void close_pipe(struct import *im)
{
	if (im->pipe_open && !uv_is_closing((uv_handle_t *)&im->pipe))
		uv_close((uv_handle_t *)&im->pipe, pipe_closed);
}

/* ---- the body into the pipe ----------------------------------------------- */

static void written(uv_write_t *w, int status)
{
	struct write *wr = (struct write *)w;
	struct import *im = wr->im;
	im->queued -= (int64_t)wr->len;
	free(wr->buf);
	free(wr);
	/* a failed write means the thread stopped reading: its end says why */
	if (status < 0)
		close_pipe(im);
	else if (!im->body_open && im->queued == 0)
		close_pipe(im); /* all of the body is with the thread: it sees the end */
	if (im->paused && im->body_open && im->req && im->queued < MAX_QUEUED / 4) {
		im->paused = false;
		xn_http_body_read(im->req, true, NULL);
	}
}

static void on_body(void *ud, const char *buf, size_t len)
{
	struct import *im = ud;
	if (!im->body_open || !im->pipe_open || uv_is_closing((uv_handle_t *)&im->pipe))
		return;
	struct write *wr = xn_calloc(1, sizeof(*wr));
	wr->im = im;
	wr->buf = xn_malloc(len);
	memcpy(wr->buf, buf, len);
	wr->len = len;
	uv_buf_t b = uv_buf_init(wr->buf, (unsigned)len);
	im->queued += (int64_t)len;
	im->received += (int64_t)len;
	if (uv_write(&wr->w, (uv_stream_t *)&im->pipe, &b, 1, written) < 0) {
		im->queued -= (int64_t)len;
		free(wr->buf);
		free(wr);
		close_pipe(im);
		return;
	}
	if (im->queued >= MAX_QUEUED && !im->paused && im->req) {
		im->paused = true;
		xn_http_body_read(im->req, false, NULL);
	}
}

static void on_body_end(void *ud)
{
	struct import *im = ud;
	im->body_open = false;
	if (im->queued == 0)
		close_pipe(im);
}

static void on_gone(void *ud)
{
	struct import *im = ud;
	im->req = NULL;
	fail(im, xn_xfer_cut_short(im->received));
	maybe_end(im);
}

/* ---- the thread's news ----------------------------------------------------- */

static void go(struct import *im)
{
	size_t n = xn_xva_plan_ndisks(im->plan);
	xn_xva_disk *d = xn_calloc(n ? n : 1, sizeof(*d));
	for (size_t i = 0; i < n; i++) {
		d[i].prefix = (char *)xn_xva_plan_disk(im->plan, i, &d[i].size);
		d[i].image = xn_location_url(im->h, im->sr, im->locs[i]);
		d[i].format = "qcow2";
	}
	xn_xva_job_go(im->job, d, n);
	for (size_t i = 0; i < n; i++)
		free(d[i].image);
	free(d);
}

static void image_made(void *ud, xn_error *err)
{
	struct import *im = ud;
	im->making--;
	if (err)
		fail(im, err);
	if (im->making == 0 && !im->err && im->job)
		go(im);
	maybe_end(im);
}

static void on_header(void *ud, const char *xml, size_t len)
{
	struct import *im = ud;
	if (im->err)
		return; /* failed meanwhile: the thread is told to stop already */
	xn_error *err = NULL;
	json_t *header = xn_xva_header_parse(xml, len, &err);
	im->plan = header ? xn_xva_plan_new(im->h, header, im->sr, im->preserve, im->metadata,
					    &err)
			  : NULL;
	json_decref(header);
	if (!im->plan) {
		fail(im, err);
		return;
	}
	size_t n = xn_xva_plan_ndisks(im->plan);
	im->locs = xn_strv_new();
	for (size_t i = 0; i < n; i++) {
		XN_AUTOFREE char *loc = xn_uuid_new();
		int64_t size;
		xn_xva_plan_disk(im->plan, i, &size);
		xn_strv_push(&im->locs, loc);
		xn_xva_plan_set_location(im->plan, i, loc);
		xn_storage_hold(im->h, im->sr, loc);
		im->making++;
		xn_image_create(im->h, im->sr, loc, size, image_made, im);
	}
	if (n == 0 && im->job)
		xn_xva_job_go(im->job, NULL, 0);
}

static void on_done(void *ud, xn_error *err)
{
	struct import *im = ud;
	im->job = NULL;
	im->thread_done = true;
	if (err)
		fail(im, err);
	close_pipe(im);
	maybe_end(im);
}

static void on_timer(uv_timer_t *t)
{
	struct import *im = t->data;
	if (im->job && im->expect > 0)
		xn_xfer_progress(im->h, im->task,
				 0.99 * (double)xn_xva_job_bytes(im->job) / (double)im->expect);
}

/* ---- the request ------------------------------------------------------------- */

char *xn_import_sr(xn_host *h, xn_http_req *req, xn_error **err)
{
	const char *ref = xn_http_req_query(req, "sr_id");
	const char *uuid = xn_http_req_query(req, "sr_uuid");
	const xn_class *c = xn_model_class("SR");
	const char *sr = ref && xn_db_class_of(h->db, ref) == c ? ref
			 : uuid ? xn_db_ref_by_uuid(h->db, c, uuid)
			 : ref ? NULL
			       : xn_db_str(h->db, h->pool_ref, "default_SR");
	if (!ref && !uuid && xn_ref_is_null(sr)) {
		xn_fail(err, "DEFAULT_SR_NOT_FOUND", sr ? sr : "", NULL);
		return NULL;
	}
	if (!sr || !xn_db_get(h->db, sr)) {
		xn_fail(err, uuid ? "UUID_INVALID" : "HANDLE_INVALID", "SR", uuid ? uuid : ref, NULL);
		return NULL;
	}
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops || ops->read_only) {
		xn_fail(err, "INVALID_VALUE", "sr_id", sr, NULL);
		return NULL;
	}
	return xn_strdup(sr);
}

static int prepare(struct import *im, xn_error **err)
{
	int role = xn_xfer_role(im->h, im->req, err);
	if (role < 0)
		return -1;
	if (role < XN_ROLE_VM_ADMIN)
		return xn_fail(err, "RBAC_PERMISSION_DENIED", "http/put_import",
			       "the role of this session does not allow the call", NULL);
	if (!(im->sr = xn_import_sr(im->h, im->req, err)))
		return -1;
	im->task = xn_xfer_task(im->h, im->req, "import", err);
	if (!im->task)
		return -1;
	int fd;
	if (xn_xva_pipe(im->h->loop, &im->pipe, im, false, &fd, err) < 0)
		return -1;
	im->pipe_open = true;
	struct xn_xva_cb cb = {.header = on_header, .done = on_done, .ud = im};
	im->job = xn_xva_import_start(im->h->loop, fd, &cb, err);
	if (!im->job)
		return -1;
	return 0;
}

static bool query_true(xn_http_req *req, const char *name)
{
	const char *v = xn_http_req_query(req, name);
	return v && strcmp(v, "true") == 0;
}

static void handle(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	struct import *im = xn_calloc(1, sizeof(*im));
	im->h = h;
	im->req = req;
	im->preserve = query_true(req, "restore") || query_true(req, "preserve");
	im->metadata = strcmp(xn_http_req_path(req), "/import_metadata") == 0;
	im->expect = xn_http_req_content_length(req);
	uv_timer_init(h->loop, &im->timer);
	im->timer.data = im;
	xn_error *err = NULL;
	if (prepare(im, &err) < 0) {
		if (!im->task) { /* nothing started */
			xn_xfer_answer_error(req, NULL, err);
			xn_error_free(err);
			im->req = NULL;
			uv_close((uv_handle_t *)&im->timer, timer_closed);
			return;
		}
		im->thread_done = !im->job;
		fail(im, err);
		maybe_end(im);
		return;
	}
	struct xn_http_stream_cb cb = {.data = on_body, .end = on_body_end, .gone = on_gone,
				       .ud = im};
	xn_http_req_stream(req, &cb);
	im->body_open = true;
	XN_AUTOFREE char *hdr = xn_xfer_task_header(im->task);
	xn_http_body_read(req, true, hdr);
	uv_timer_start(&im->timer, on_timer, PROGRESS_MS, PROGRESS_MS);
}

void xn_vm_import_register(xn_host *h)
{
	xn_api_route_stream(h->api, "PUT", "/import", handle, h);
	xn_api_route_stream(h->api, "PUT", "/import_metadata", handle, h);
}

void xn_xva_register(xn_host *h)
{
	xn_vm_export_register(h);
	xn_vm_import_register(h);
	xn_vm_import_image_register(h);
}
