/* vdi_transfer.c: PUT /import_raw_vdi and GET /export_raw_vdi
 * (vdi_transfer.h).
 *
 * How bytes move, by format:
 *  - raw import: the body goes, a block at a time, through NBD into a
 *    new empty qcow2 image (a private qemu-nbd serves it; nbd_client.h).
 *    The new image reads zeros where nothing was written, so all-zero
 *    64 KiB grains are skipped: the image stays thin.
 *  - qcow2 and vhd imports: a one-way stream of these formats cannot be
 *    written into an image without parsing them, so the body is spooled
 *    to a file (beside the SR's images when the SR is a directory),
 *    checked with `qemu-img info`, and then either used as it is (a
 *    standalone qcow2 spooled into the SR's directory: `qemu-img check`,
 *    grown to the VDI's size) or converted by `qemu-img convert` into a
 *    new image.
 *  - raw export: NBD reads from a read-only qemu-nbd on the VDI's image
 *    (QEMU flattens its chain), a few blocks ahead, sent in order.
 *  - qcow2 and vhd exports: `qemu-img convert` to a temporary file, which
 *    is opened, unlinked and streamed (vhd: a dynamic VHD whose footer
 *    carries the exact size, as xapi's).
 * Back-pressure both ways: body reading pauses while too much waits to
 * be written; reading ahead stops while the client's connection has
 * XN_HTTP_STREAM_HIGH bytes queued.
 *
 * An import never writes the VDI's image: it makes a new one and, once
 * complete, moves the VDI to it in one commit (the old image is removed
 * after). Temporary files are held (xn_storage_hold) while in use and
 * named like images, so that the SR's garbage collector removes them
 * after a crash; those outside SRs live in DATA/transfer, emptied at
 * start.
 *
 * Every asynchronous step counts in x->pending. A transfer ends exactly
 * once (xfer_end), when its first error or its success is known and
 * nothing it started is still running: the task is settled, the request
 * answered, every temporary file removed. */
#include "storage/vdi_transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http_xfer.h"
#include "storage/img_job.h"
#include "storage/nbd_client.h"
#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"

#define BLOCK (2u << 20)            /* bytes per write or read */
#define GRAIN (64u << 10)           /* zero runs this long are not written */
#define MAX_WAITING (32u << 20)     /* import: received, not yet written */
#define READ_AHEAD 4                /* export: blocks being read at once */
#define PROGRESS_MS 250             /* task progress is committed this often */

struct fmt {
	const char *name, *qemu;
};
enum { RAW, QCOW2, VHD };
static const struct fmt formats[] = {
	[RAW] = {"raw", "raw"}, [QCOW2] = {"qcow2", "qcow2"}, [VHD] = {"vhd", "vpc"}};

struct blk {
	struct xfer *x;
	char *buf;
	size_t len;
	int64_t off;
	int refs;                   /* import: writes in flight on it */
	bool ready;                 /* export: read */
	struct blk *next;           /* export: in offset order */
	uv_fs_t fs;
};

struct xfer {
	xn_host *h;
	xn_http_req *req;           /* NULL once answered or gone */
	bool import;
	const struct fmt *fmt;
	char *vdi, *sr, *task;
	char *src, *src_fmt;        /* export: what QEMU opens */
	char *loc;                  /* import: the new image's location (held) */
	char *spool;                /* a local file: the upload, or the converted export */
	char *spool_loc;            /* the spool's location when it is in the SR (held) */
	char *path;                 /* local callers: their own file, read or written
				     * in place by qemu-img (never removed) */
	int64_t vsize;              /* the VDI's virtual size */
	int64_t expect;             /* body bytes announced (-1 unknown), or to send */
	int64_t limit;              /* import: most body bytes accepted */
	int64_t moved;              /* received or sent */
	int64_t issued;             /* export: bytes asked for */
	int64_t waiting;            /* import: received, not yet written */
	int reading;                /* export: blocks being read */
	double lo, hi;              /* the current phase's share of the progress */
	double progress;
	uint64_t progress_ms;
	xn_nbd *nbd;
	uv_file fd;
	xn_img_job *job;            /* the qemu-img running, if any */
	const char *job_what;
	void (*job_done)(struct xfer *x, const char *output);
	struct blk *cur;            /* import: being filled */
	struct blk *head, *tail;    /* export: being read or waiting to be sent */
	int pending;                /* steps running */
	int depth;                  /* callbacks running (enter, leave) */
	bool stream_open;           /* the body is being read, or the answer sent */
	bool paused, registered, answering, ended;
	bool local;                 /* import: the new image is a local file */
	xn_error *err;
	void (*next)(struct xfer *x);  /* when pending drops to 0 without error */
};

static json_t *busy;            /* VDI ref -> task ref of its transfer */
static char *transfer_dir;      /* DATA/transfer */

static void xfer_end(struct xfer *x);
static void import_commit(struct xfer *x);

/* ---- progress, failure, the end --------------------------------------------- */

static void set_progress(struct xfer *x, double fraction, bool force)
{
	double p = x->lo + (x->hi - x->lo) * (fraction > 1 ? 1 : fraction);
	uint64_t now = xn_now_ms();
	if (!force && (p - x->progress < 0.01 || now - x->progress_ms < PROGRESS_MS))
		return;
	x->progress = p;
	x->progress_ms = now;
	xn_xfer_progress(x->h, x->task, p);
}

/* Enter the next phase, which takes the progress up to hi. */
static void phase(struct xfer *x, double hi)
{
	set_progress(x, 1, true);
	x->lo = x->hi;
	x->hi = hi;
}

/* A step ended: go on once nothing else runs. Callbacks from outside
 * (HTTP, NBD, file system, processes) run between enter and leave, and
 * the transfer only moves on (or ends, and is freed) at the outermost
 * leave: whatever a callback calls may fail the transfer, and the
 * callback still finds it there afterwards. */
static void settled(struct xfer *x)
{
	if (x->depth > 0 || x->pending > 0 || x->ended)
		return;
	void (*next)(struct xfer *) = x->err ? xfer_end : x->next;
	x->next = NULL;
	if (next == xfer_end) {
		xfer_end(x); /* may free x */
	} else if (next) {
		x->depth++;
		next(x);
		x->depth--;
		settled(x);
	}
}

static void enter(struct xfer *x)
{
	x->depth++;
}

static void leave(struct xfer *x)
{
	x->depth--;
	settled(x);
}

/* No more body to read, or answer to send. */
static void close_stream(struct xfer *x)
{
	if (!x->stream_open)
		return;
	x->stream_open = false;
	x->pending--;
}

/* Record the first failure (err taken over): the transfer stops as soon
 * as what runs has stopped (at the next settled). */
static void fail(struct xfer *x, xn_error *err)
{
	if (x->err || x->ended) {
		xn_error_free(err);
		return;
	}
	x->err = err;
	close_stream(x);
	if (x->job)
		xn_img_job_kill(x->job);
}

static void fail_code(struct xfer *x, const char *code, ...) __attribute__((sentinel));
static void fail_code(struct xfer *x, const char *code, ...)
{
	xn_error *err = NULL;
	va_list ap;
	va_start(ap, code);
	xn_fail_va(&err, code, ap);
	va_end(ap);
	fail(x, err);
}

static void remove_temporaries(struct xfer *x)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (x->spool)
		unlink(x->spool);
	if (x->spool_loc)
		xn_storage_release(x->h, x->sr, x->spool_loc);
	if (x->loc) { /* an import that did not switch the VDI over */
		xn_image_remove(x->h, x->sr, x->loc);
		xn_storage_release(x->h, x->sr, x->loc);
	}
}

static void blk_free(struct blk *b)
{
	if (b) {
		free(b->buf);
		free(b);
	}
}

static void xfer_free(struct xfer *x)
{
	if (x->registered)
		json_object_del(busy, x->vdi);
	while (x->head) {
		struct blk *b = x->head;
		x->head = b->next;
		blk_free(b);
	}
	blk_free(x->cur);
	xn_error_free(x->err);
	free(x->vdi);
	free(x->sr);
	free(x->task);
	free(x->src);
	free(x->src_fmt);
	free(x->loc);
	free(x->spool);
	free(x->spool_loc);
	free(x->path);
	free(x);
}

static void nbd_closed(void *ud)
{
	struct xfer *x = ud;
	enter(x);
	x->nbd = NULL;
	x->pending--;
	leave(x);
}

/* Stop qemu-nbd (an image is closed once it has exited), then next. */
static void nbd_stop(struct xfer *x, void (*next)(struct xfer *x))
{
	x->next = next;
	x->pending++;
	xn_nbd_close(x->nbd, nbd_closed, x);
}

/* The end, once: settle the task, answer, clean up. */
static void xfer_end(struct xfer *x)
{
	if (x->nbd) {
		nbd_stop(x, xfer_end);
		return;
	}
	x->ended = true;
	if (x->err)
		xn_info("transfer: %s of VDI %s failed: %s", x->import ? "import" : "export",
			x->vdi ? xn_db_str(x->h->db, x->vdi, "uuid") : "?", x->err->message);
	remove_temporaries(x);
	if (x->task) {
		xn_changes *cs = xn_changes_new(x->h->db);
		json_t *result = json_string(x->vdi);
		xn_task_settle(cs, x->task, x->err, x->err ? NULL : result, xn_type_parse("VDI ref"));
		json_decref(result);
		XN_AUTOERR xn_error *cerr = NULL;
		if (xn_db_commit(x->h->db, cs, &cerr) < 0)
			xn_warn("transfer: cannot settle task %s: %s", x->task, cerr->message);
	}
	if (x->req && x->answering) {
		xn_http_stream_end(x->req, !x->err);
	} else if (x->req && x->err) {
		xn_xfer_answer_error(x->req, x->task, x->err);
	} else if (x->req) {
		XN_AUTOFREE char *hdr = xn_xfer_task_header(x->task);
		xn_http_respond_headers(x->req, 200, "text/plain", hdr, "", 0);
	}
	x->req = NULL;
	xfer_free(x);
}

/* ---- qemu-img ------------------------------------------------------------------ */

static void job_progress(void *ud, double fraction)
{
	struct xfer *x = ud;
	if (!x->err)
		set_progress(x, fraction, false);
}

static void job_done(void *ud, int status, const char *output)
{
	struct xfer *x = ud;
	enter(x);
	void (*done)(struct xfer *, const char *) = x->job_done;
	x->job = NULL;
	x->job_done = NULL;
	x->pending--;
	if (status != 0) {
		XN_AUTOFREE char *st = xn_asprintf("%d", status);
		fail_code(x, "SR_BACKEND_FAILURE", x->job_what, st, output, NULL);
	} else if (!x->err && done) {
		done(x, output);
	}
	leave(x);
}

/* Run qemu-img with args (NULL-terminated) as one of x's steps; then
 * done(x, output) unless it failed, which fails x. With progress, its
 * -p figures move x's progress. */
static void img_run(struct xfer *x, const char *what, bool progress,
		    void (*done)(struct xfer *, const char *), ...) __attribute__((sentinel));
static void img_run(struct xfer *x, const char *what, bool progress,
		    void (*done)(struct xfer *, const char *), ...)
{
	XN_AUTOSTRV char **argv = xn_strv_new();
	xn_strv_push(&argv, "qemu-img");
	va_list ap;
	va_start(ap, done);
	for (const char *a; (a = va_arg(ap, const char *));)
		xn_strv_push(&argv, a);
	va_end(ap);
	x->job_what = what;
	x->job_done = done;
	x->pending++;
	x->job = xn_img_job_run(x->h->loop, argv, progress ? job_progress : NULL, job_done, x);
}

/* ---- files and blocks ------------------------------------------------------- */

/* Where a spool file goes: beside the SR's images when the SR is a
 * local directory (as a location the garbage collector knows), else in
 * DATA/transfer. */
static void choose_spool(struct xfer *x)
{
	xn_sr_conf *c = xn_sr_conf_get(x->h, x->sr);
	XN_AUTOFREE char *uuid = xn_uuid_new();
	if (c && c->dir) {
		x->spool_loc = xn_strdup(uuid);
		xn_storage_hold(x->h, x->sr, uuid);
		x->spool = xn_asprintf("%s/%s.qcow2", c->dir, uuid);
	} else {
		x->spool = xn_asprintf("%s/%s.part", transfer_dir, uuid);
	}
	xn_sr_conf_free(c);
}

/* The path or URL qemu-img opens for a location of x's SR (caller frees). */
static char *location_url(struct xfer *x, const char *loc)
{
	return xn_location_url(x->h, x->sr, loc);
}

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static struct blk *blk_new(struct xfer *x, int64_t off, size_t cap)
{
	struct blk *b = xn_calloc(1, sizeof(*b));
	b->x = x;
	b->buf = xn_malloc(cap);
	b->off = off;
	b->fs.data = b;
	return b;
}

static void nbd_opened(void *ud, xn_error *err)
{
	struct xfer *x = ud;
	enter(x);
	x->pending--;
	if (err)
		fail(x, err);
	leave(x);
}

/* Serve image with a private qemu-nbd; then next. */
static void nbd_start(struct xfer *x, const char *image, const char *fmt,
		      enum xn_nbd_mode mode, void (*next)(struct xfer *x))
{
	XN_AUTOFREE char *id = xn_uuid_new();
	XN_AUTOFREE char *sock = xn_asprintf("%s/nbd-%.8s.sock", transfer_dir, id);
	x->next = next;
	x->pending++;
	x->nbd = xn_nbd_open(x->h->loop, image, fmt, mode, sock, nbd_opened, x);
}

/* ---- import: the body in ------------------------------------------------------ */

static void blk_failed(struct xfer *x, const struct blk *b, int error)
{
	if (error) {
		XN_AUTOFREE char *off = xn_asprintf("%lld", (long long)b->off);
		fail_code(x, "VDI_IO_ERROR", off, strerror(error), NULL);
	}
}

static void blk_written(struct xfer *x, struct blk *b, int error);
static void blk_read(struct xfer *x, struct blk *b, int error);

/* A block's request ended: an import's write, an export's read. */
static void blk_done(struct blk *b, int error)
{
	if (b->x->import)
		blk_written(b->x, b, error);
	else
		blk_read(b->x, b, error);
}

static void nbd_done(void *ud, int error)
{
	blk_done(ud, error);
}

static void fs_done(uv_fs_t *req)
{
	struct blk *b = req->data;
	/* a short read is an error too: the file is as long as announced */
	int error = req->result < 0 ? (int)-req->result : (size_t)req->result < b->len ? EIO : 0;
	uv_fs_req_cleanup(req);
	blk_done(b, error);
}

/* A write of b ended: b goes after its last one; reading goes on if it
 * paused for the writes to catch up. */
static void blk_written(struct xfer *x, struct blk *b, int error)
{
	enter(x);
	x->pending--;
	blk_failed(x, b, error);
	if (--b->refs == 0) {
		x->waiting -= (int64_t)b->len;
		blk_free(b);
	}
	if (x->paused && x->stream_open && x->req && x->waiting < MAX_WAITING / 2) {
		x->paused = false;
		xn_http_body_read(x->req, true, NULL);
	}
	leave(x);
}

static size_t grain(const struct blk *b, size_t i)
{
	return b->len - i < GRAIN ? b->len - i : GRAIN;
}

/* Through NBD: each run of grains that are not all zeros. */
static void write_runs(struct xfer *x, struct blk *b)
{
	for (size_t i = 0; i < b->len && !x->err;) {
		if (all_zero(b->buf + i, grain(b, i))) {
			i += grain(b, i);
			continue;
		}
		size_t start = i;
		while (i < b->len && !all_zero(b->buf + i, grain(b, i)))
			i += grain(b, i);
		b->refs++;
		x->pending++;
		if (xn_nbd_pwrite(x->nbd, b->buf + start, i - start, (uint64_t)b->off + start,
				  nbd_done, b) < 0)
			blk_written(x, b, ENOTCONN);
	}
}

/* Into the spool: the block, unless it is all zeros (left a hole). */
static void write_spool(struct xfer *x, struct blk *b)
{
	if (all_zero(b->buf, b->len))
		return;
	b->refs++;
	x->pending++;
	uv_buf_t ub = uv_buf_init(b->buf, (unsigned)b->len);
	if (uv_fs_write(x->h->loop, &b->fs, x->fd, &ub, 1, b->off, fs_done) < 0)
		blk_written(x, b, EIO);
}

static void submit(struct xfer *x)
{
	struct blk *b = x->cur;
	x->cur = NULL;
	if (!b || b->len == 0) {
		blk_free(b);
		return;
	}
	x->waiting += (int64_t)b->len;
	b->refs = 1; /* ours while the writes are issued */
	x->pending++;
	if (x->nbd)
		write_runs(x, b);
	else
		write_spool(x, b);
	blk_written(x, b, 0);
}

static void on_body(void *ud, const char *buf, size_t len)
{
	struct xfer *x = ud;
	if (x->err)
		return;
	enter(x);
	if (x->moved + (int64_t)len > x->limit) {
		XN_AUTOFREE char *need = xn_asprintf("%lld", (long long)(x->moved + (int64_t)len));
		fail_code(x, "VDI_TOO_SMALL", x->vdi, need, NULL);
		leave(x);
		return;
	}
	while (len) {
		if (!x->cur)
			x->cur = blk_new(x, x->moved, BLOCK);
		size_t n = BLOCK - x->cur->len < len ? BLOCK - x->cur->len : len;
		memcpy(x->cur->buf + x->cur->len, buf, n);
		x->cur->len += n;
		x->moved += (int64_t)n;
		buf += n;
		len -= n;
		if (x->cur->len == BLOCK)
			submit(x);
	}
	if (x->waiting >= MAX_WAITING && !x->paused && x->req) {
		x->paused = true;
		xn_http_body_read(x->req, false, NULL);
	}
	int64_t total = x->expect > 0 ? x->expect : x->limit;
	set_progress(x, (double)x->moved / (double)total, false);
	leave(x);
}

static void on_body_end(void *ud)
{
	struct xfer *x = ud;
	enter(x);
	if (!x->err)
		submit(x);
	close_stream(x);
	leave(x);
}

static void on_gone(void *ud)
{
	struct xfer *x = ud;
	enter(x);
	x->req = NULL;
	XN_AUTOFREE char *msg = NULL;
	if (x->import) {
		XN_AUTOFREE char *of = x->expect >= 0 ? xn_asprintf(" of %lld", (long long)x->expect)
						      : xn_strdup("");
		msg = xn_asprintf("the upload ended after %lld%s bytes", (long long)x->moved, of);
		fail_code(x, "IMPORT_ERROR_GENERIC", msg, NULL);
	} else {
		msg = xn_asprintf("the client went away after %lld of %lld bytes",
				  (long long)x->moved, (long long)x->expect);
		fail_code(x, "VDI_IO_ERROR", msg, NULL);
	}
	leave(x);
}

static void raw_done(struct xfer *x);
static void spool_done(struct xfer *x);

static void start_reading(struct xfer *x)
{
	struct xn_http_stream_cb cb = {.data = on_body, .end = on_body_end, .gone = on_gone,
				       .ud = x};
	xn_http_req_stream(x->req, &cb);
	x->stream_open = true;
	x->pending++; /* until the body ends */
	x->next = x->nbd ? raw_done : spool_done;
	XN_AUTOFREE char *hdr = xn_xfer_task_header(x->task);
	xn_http_body_read(x->req, true, hdr);
}

/* ---- import: after the body ----------------------------------------------------- */

static void nbd_flushed(void *ud, int error)
{
	struct xfer *x = ud;
	enter(x);
	x->pending--;
	if (error)
		fail_code(x, "VDI_IO_ERROR", "flush", strerror(error), NULL);
	leave(x);
}

static void fs_step_done(uv_fs_t *req)
{
	struct xfer *x = req->data;
	enter(x);
	x->pending--;
	if (req->result < 0)
		fail_code(x, "VDI_IO_ERROR", "sync", uv_strerror((int)req->result), NULL);
	uv_fs_req_cleanup(req);
	free(req);
	leave(x);
}

/* Run a file system call on the thread pool as one of x's steps. */
static uv_fs_t *fs_step(struct xfer *x)
{
	uv_fs_t *req = xn_calloc(1, sizeof(*req));
	req->data = x;
	x->pending++;
	return req;
}

static void sync_close(struct xfer *x)
{
	uv_fs_close(x->h->loop, fs_step(x), x->fd, fs_step_done);
	x->fd = -1;
	x->next = import_commit;
}

static void sync_file(struct xfer *x)
{
	uv_fs_fdatasync(x->h->loop, fs_step(x), x->fd, fs_step_done);
	x->next = sync_close;
}

/* The new image, written by a qemu-nbd that never synced, is made
 * durable before the VDI is switched to it. */
static void sync_image(struct xfer *x)
{
	if (x->nbd) {
		nbd_stop(x, sync_image);
		return;
	}
	XN_AUTOFREE char *path = location_url(x, x->loc);
	x->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (x->fd < 0) {
		fail_code(x, "VDI_IO_ERROR", path, strerror(errno), NULL);
		return;
	}
	sync_file(x);
}

/* raw: every write done; the new image is made durable, and the VDI
 * switched to it once qemu-nbd has exited (and closed the image). */
static void raw_done(struct xfer *x)
{
	xn_debug("transfer: body received (%lld bytes)", (long long)x->moved);
	if (x->local) {
		sync_image(x);
		return;
	}
	x->next = import_commit;
	x->pending++;
	if (xn_nbd_flush(x->nbd, nbd_flushed, x) < 0)
		nbd_flushed(x, ENOTCONN);
}

/* A spooled image is checked before QEMU does more than read its
 * header: no backing or external data file (they could name any file
 * of this host), not encrypted, not larger than the VDI. */
static int check_info(struct xfer *x, json_t *info, xn_error **err)
{
	json_t *data = json_object_get(json_object_get(info, "format-specific"), "data");
	int64_t size = json_integer_value(json_object_get(info, "virtual-size"));
	if (size <= 0)
		return xn_fail(err, "IMPORT_ERROR_GENERIC", "the upload is not a valid image", NULL);
	if (json_object_get(info, "backing-filename") || json_object_get(data, "data-file"))
		return xn_fail(err, "IMPORT_ERROR_GENERIC",
			       "the image refers to other files (a backing or data file)", NULL);
	if (json_is_true(json_object_get(info, "encrypted")))
		return xn_fail(err, "IMPORT_ERROR_GENERIC", "the image is encrypted", NULL);
	if (size > x->vsize) {
		XN_AUTOFREE char *need = xn_asprintf("%lld", (long long)size);
		return xn_fail(err, "VDI_TOO_SMALL", x->vdi, need, NULL);
	}
	return 0;
}

/* The checked qcow2 spool is the new image: grow it to the VDI's size. */
static void spool_checked(struct xfer *x, const char *output)
{
	XN_AUTOFREE char *sz = xn_asprintf("%lld", (long long)x->vsize);
	x->loc = x->spool_loc;
	x->spool_loc = NULL;
	free(x->spool);
	x->spool = NULL;
	XN_AUTOFREE char *path = location_url(x, x->loc);
	x->local = true;
	x->next = sync_image;
	img_run(x, "resize", false, NULL, "resize", "-q", "-f", "qcow2", path, sz, NULL);
}

/* The new image exists: a raw upload streams into it through qemu-nbd,
 * a spool is converted into it. A local image is synced once written
 * (sync_image); qemu-nbd or qemu-img syncs others itself. */
static void image_made(void *ud, xn_error *err)
{
	struct xfer *x = ud;
	enter(x);
	x->pending--;
	XN_AUTOFREE char *url = location_url(x, x->loc);
	x->local = url && url[0] == '/';
	if (err || x->err) {
		fail(x, err);
	} else if (x->fmt == &formats[RAW] && !x->path) {
		nbd_start(x, url, "qcow2", x->local ? XN_NBD_WRITE_UNSAFE : XN_NBD_WRITE,
			  start_reading);
	} else {
		x->next = x->local ? sync_image : import_commit;
		img_run(x, "convert", true, NULL, "convert", "-p", "-n", "--target-is-zero", "-t",
			x->local ? "unsafe" : "writeback", "-f", x->fmt->qemu, "-O", "qcow2",
			x->path ? x->path : x->spool, url, NULL);
	}
	leave(x);
}

/* An empty image of the VDI's size, at a new location (held). */
static void new_image(struct xfer *x)
{
	x->loc = xn_uuid_new();
	xn_storage_hold(x->h, x->sr, x->loc);
	x->pending++;
	xn_image_create(x->h, x->sr, x->loc, x->vsize, image_made, x);
}

static void spool_probed(struct xfer *x, const char *output)
{
	json_t *info = json_loads(output, 0, NULL);
	xn_error *err = NULL;
	int rc = check_info(x, info, &err);
	/* a qcow2 spooled into the SR becomes the image itself, unless it has
	 * internal snapshots (a conversion keeps only the disk's content) */
	bool as_is = rc == 0 && x->spool_loc && x->fmt == &formats[QCOW2] &&
		     json_array_size(json_object_get(info, "snapshots")) == 0;
	json_decref(info);
	if (rc < 0) {
		fail(x, err);
		return;
	}
	phase(x, 1);
	if (as_is) {
		img_run(x, "check", false, spool_checked, "check", "-q", "-f", "qcow2", x->spool, NULL);
		return;
	}
	new_image(x);
}

static void spool_done(struct xfer *x)
{
	int rc = ftruncate(x->fd, x->moved);
	if (close(x->fd) < 0)
		rc = -1;
	x->fd = -1;
	if (rc < 0) {
		fail_code(x, "VDI_IO_ERROR", "spool", strerror(errno), NULL);
		return;
	}
	img_run(x, "info", false, spool_probed, "info", "--output=json", "-f", x->fmt->qemu,
		x->spool, NULL);
}

/* Whether a VM that is not halted has vdi (the Running, Paused or
 * Suspended ones: with only_running, Running or Paused and writing). */
static bool vdi_busy(xn_host *h, const char *vdi, bool only_running)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vdi, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		const char *ps = xn_db_str(h->db, xn_db_str(h->db, vbd, "VM"), "power_state");
		if (strcmp(ps, "Halted") == 0)
			continue;
		if (!only_running ||
		    (strcmp(ps, "Suspended") != 0 && xn_streq(xn_db_str(h->db, vbd, "mode"), "RW")))
			return true;
	}
	return false;
}

/* Importing into a VDI other images are based on would change them too. */
static int check_importable(struct xfer *x, xn_error **err)
{
	xn_host *h = x->h;
	if (!xn_db_get(h->db, x->vdi))
		return xn_fail(err, "HANDLE_INVALID", "VDI", x->vdi, NULL);
	if (vdi_busy(h, x->vdi, false) || xn_vdi_children(h, x->vdi, NULL) > 0 ||
	    xn_db_int(h->db, x->vdi, "virtual_size") != x->vsize)
		return xn_fail(err, "VDI_IN_USE", x->vdi, "import", NULL);
	return 0;
}

/* The new image is complete: the VDI moves to it, the old one goes. */
static void import_commit(struct xfer *x)
{
	if (x->nbd) {
		nbd_stop(x, import_commit);
		return;
	}
	xn_host *h = x->h;
	xn_error *err = NULL;
	xn_debug("transfer: committing the import into %s", x->vdi);
	if (check_importable(x, &err) < 0) {
		fail(x, err);
		return;
	}
	XN_AUTOFREE char *old = xn_strdup(xn_db_str(h->db, x->vdi, "location"));
	xn_changes *cs = xn_changes_new(h->db);
	json_t *rec = xn_changes_edit(cs, x->vdi);
	json_object_set_new(rec, "location", json_string(x->loc));
	json_t *smc = json_object_get(rec, "sm_config");
	json_object_del(smc, "xenia-parent"); /* a standalone image now */
	json_object_del(smc, "vhd-parent");
	if (xn_db_commit(h->db, cs, &err) < 0) {
		fail(x, err);
		return;
	}
	xn_storage_release(h, x->sr, x->loc);
	free(x->loc);
	x->loc = NULL;
	xn_image_remove(h, x->sr, old);
	xn_sr_gc_kick(h, x->sr);  /* the old image's base may be unused now */
	xn_sr_update_sizes(h, x->sr);
	x->next = xfer_end; /* steps never end x themselves: settled does */
}

static void import_start(struct xfer *x)
{
	if (x->path) {
		/* a local caller's file: checked, then converted in place */
		x->hi = 0;
		img_run(x, "info", false, spool_probed, "info", "--output=json", "-f", x->fmt->qemu,
			x->path, NULL);
		return;
	}
	if (x->fmt == &formats[RAW]) {
		x->hi = 1;
		new_image(x);
		return;
	}
	choose_spool(x);
	x->fd = open(x->spool, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (x->fd < 0) {
		fail_code(x, "VDI_IO_ERROR", x->spool, strerror(errno), NULL);
		return;
	}
	/* the upload is most of the work of an import used as it is */
	x->hi = x->fmt == &formats[QCOW2] && x->spool_loc ? 0.95 : 0.5;
	start_reading(x);
}

/* ---- export -------------------------------------------------------------------- */

static void pump(struct xfer *x);

/* Send the blocks read, in order. */
static void send_ready(struct xfer *x)
{
	while (x->head && x->head->ready && x->req && !x->err) {
		struct blk *b = x->head;
		x->head = b->next;
		if (!x->head)
			x->tail = NULL;
		x->moved += (int64_t)b->len;
		xn_http_stream_write(x->req, b->buf, b->len); /* takes the buffer */
		b->buf = NULL;
		blk_free(b);
	}
	set_progress(x, x->expect > 0 ? (double)x->moved / (double)x->expect : 1, false);
}

static void blk_read(struct xfer *x, struct blk *b, int error)
{
	enter(x);
	x->pending--;
	x->reading--;
	b->ready = true;
	blk_failed(x, b, error);
	send_ready(x);
	pump(x);
	leave(x);
}

/* Read ahead while the client keeps up; end once everything is sent. */
static void pump(struct xfer *x)
{
	while (!x->err && x->req && x->issued < x->expect && x->reading < READ_AHEAD &&
	       xn_http_stream_queued(x->req) < XN_HTTP_STREAM_HIGH) {
		size_t len = x->expect - x->issued < BLOCK ? (size_t)(x->expect - x->issued) : BLOCK;
		struct blk *b = blk_new(x, x->issued, len);
		b->len = len;
		if (x->tail)
			x->tail->next = b;
		else
			x->head = b;
		x->tail = b;
		x->issued += (int64_t)len;
		x->reading++;
		x->pending++;
		int rc;
		if (x->nbd) {
			rc = xn_nbd_pread(x->nbd, b->buf, len, (uint64_t)b->off, nbd_done, b);
		} else {
			uv_buf_t ub = uv_buf_init(b->buf, (unsigned)len);
			rc = uv_fs_read(x->h->loop, &b->fs, x->fd, &ub, 1, b->off, fs_done);
		}
		if (rc < 0)
			blk_read(x, b, EIO);
	}
	if (!x->err && x->moved == x->expect)
		close_stream(x); /* all sent */
}

static void on_drain(void *ud)
{
	struct xfer *x = ud;
	enter(x);
	pump(x);
	leave(x);
}

static void start_sending(struct xfer *x)
{
	if (x->nbd)
		x->expect = xn_nbd_size(x->nbd);
	struct xn_http_stream_cb cb = {.drain = on_drain, .gone = on_gone, .ud = x};
	xn_http_req_stream(x->req, &cb);
	XN_AUTOFREE char *hdr = xn_asprintf("task-id: %s\r\nContent-Disposition: attachment; "
					    "filename=\"%s.%s\"\r\n",
					    x->task, xn_db_str(x->h->db, x->vdi, "uuid"),
					    x->fmt->name);
	x->answering = true;
	x->stream_open = true;
	x->pending++; /* until everything is sent */
	x->next = xfer_end;
	if (xn_http_stream_begin(x->req, 200, "application/octet-stream", x->expect, hdr) < 0)
		return; /* gone: on_gone follows */
	pump(x);
}

/* The converted image: opened, unlinked (nothing to clean up after a
 * crash from now on), streamed. */
static void export_converted(struct xfer *x, const char *output)
{
	struct stat st;
	x->fd = open(x->spool, O_RDONLY | O_CLOEXEC);
	if (x->fd < 0 || fstat(x->fd, &st) < 0) {
		fail_code(x, "VDI_IO_ERROR", x->spool, strerror(errno), NULL);
		return;
	}
	unlink(x->spool);
	x->expect = st.st_size;
	phase(x, 1);
	x->next = start_sending;
}

static void export_start(struct xfer *x)
{
	x->src = xn_vdi_path(x->h, x->vdi);
	x->src_fmt = xn_strdup(xn_vdi_format(x->h, x->vdi));
	if (!x->src) {
		fail_code(x, "VDI_MISSING", x->sr, x->vdi, NULL);
		return;
	}
	if (x->fmt == &formats[RAW] && !x->path) {
		x->hi = 1;
		nbd_start(x, x->src, x->src_fmt, XN_NBD_READ, start_sending);
		return;
	}
	/* vhd as xapi writes it: dynamic, its footer giving the exact size */
	const char *opts = x->fmt == &formats[VHD]     ? "subformat=dynamic,force_size=on"
			   : x->fmt == &formats[QCOW2] ? "compat=1.1"
						       : "preallocation=off";
	if (x->path) {
		/* a local caller's file, written in place */
		x->hi = 1;
		x->next = xfer_end;
		img_run(x, "convert", true, NULL, "convert", "-p", "-f", x->src_fmt, "-O",
			x->fmt->qemu, "-o", opts, x->src, x->path, NULL);
		return;
	}
	choose_spool(x);
	x->hi = 0.5;
	img_run(x, "convert", true, export_converted, "convert", "-p", "-f", x->src_fmt, "-O",
		x->fmt->qemu, "-o", opts, x->src, x->spool, NULL);
}

/* ---- requests ---------------------------------------------------------------- */

static const char *vdi_of(xn_host *h, const char *v)
{
	const xn_class *vc = xn_model_class("VDI");
	return xn_db_class_of(h->db, v) == vc ? v : xn_db_ref_by_uuid(h->db, vc, v);
}

/* path= (Xenia's own): a caller on the local socket names its file,
 * which qemu-img reads or writes in place instead of a byte stream
 * through the connection (xe vdi-import / vdi-export on the host). Not
 * over the network: the file is the host's. */
static int check_path(struct xfer *x, xn_error **err)
{
	const char *path = xn_http_req_query(x->req, "path");
	if (!path)
		return 0;
	if (!xn_http_req_is_local(x->req))
		return xn_fail(err, "PERMISSION_DENIED",
			       "path= is only for callers on the host's local socket", NULL);
	struct stat st;
	if (path[0] != '/' || strstr(path, "/../"))
		return xn_fail(err, "INVALID_VALUE", "path", path, NULL);
	if (x->import && stat(path, &st) < 0)
		return xn_fail(err, "INVALID_VALUE", "path", path, strerror(errno), NULL);
	if (x->import && !S_ISREG(st.st_mode))
		return xn_fail(err, "INVALID_VALUE", "path", path, "not a regular file", NULL);
	if (!x->import && lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return xn_fail(err, "INVALID_VALUE", "path", path, "not a regular file", NULL);
	x->path = xn_strdup(path);
	return 0;
}

/* The checks every transfer passes before it starts. */
static int check(struct xfer *x, xn_error **err)
{
	xn_host *h = x->h;
	const char *v = xn_http_req_query(x->req, "vdi");
	const char *ref = v ? vdi_of(h, v) : NULL;
	if (!ref)
		return xn_fail(err, v && xn_str_has_prefix(v, "OpaqueRef:") ? "HANDLE_INVALID"
									 : "UUID_INVALID",
			       "VDI", v ? v : "", NULL);
	x->vdi = xn_strdup(ref);
	x->sr = xn_strdup(xn_db_str(h->db, ref, "SR"));
	x->vsize = xn_db_int(h->db, ref, "virtual_size");
	const char *f = xn_http_req_query(x->req, "format");
	for (size_t i = 0; i < XN_ARRAY_LEN(formats) && !x->fmt; i++)
		if (strcmp(formats[i].name, f ? f : "raw") == 0)
			x->fmt = &formats[i];
	if (!x->fmt)
		return xn_fail(err, "INVALID_VALUE", "format", f, NULL);
	const char *other = json_string_value(json_object_get(busy, ref));
	if (other)
		return xn_fail(err, "OTHER_OPERATION_IN_PROGRESS", "VDI", ref, "transfer", other, NULL);
	const xn_sr_ops *ops = xn_sr_ops_of(h, x->sr);
	if (!ops)
		return xn_fail(err, "SR_UNKNOWN_DRIVER", xn_db_str(h->db, x->sr, "type"), NULL);
	if (check_path(x, err) < 0)
		return -1;
	if (!x->import)
		return vdi_busy(h, ref, true) ? xn_fail(err, "VDI_IN_USE", ref, "export", NULL) : 0;
	if (ops->read_only || xn_db_bool(h->db, ref, "read_only") ||
	    strcmp(xn_db_str(h->db, ref, "type"), "suspend") == 0)
		return xn_fail(err, "VDI_READONLY", ref, NULL);
	if (check_importable(x, err) < 0)
		return -1;
	/* an image file may be somewhat larger than what it holds */
	x->limit = x->fmt == &formats[RAW] ? x->vsize : x->vsize + x->vsize / 8 + (64 << 20);
	x->expect = xn_http_req_content_length(x->req);
	struct stat st;
	if (x->path && stat(x->path, &st) == 0)
		x->expect = st.st_size;
	if (x->expect > x->limit) {
		XN_AUTOFREE char *need = xn_asprintf("%lld", (long long)x->expect);
		return xn_fail(err, "VDI_TOO_SMALL", ref, need, NULL);
	}
	return 0;
}

static void handle(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	bool import = strcmp(xn_http_req_method(req), "PUT") == 0;
	xn_error *err = NULL;
	int role = xn_xfer_role(h, req, &err);
	if (role >= 0 && role < XN_ROLE_VM_ADMIN)
		xn_fail(&err, "RBAC_PERMISSION_DENIED",
			import ? "http/put_import_raw_vdi" : "http/get_export_raw_vdi",
			"the role of this session does not allow the call", NULL);
	struct xfer *x = xn_calloc(1, sizeof(*x));
	x->h = h;
	x->req = req;
	x->import = import;
	x->fd = -1;
	enter(x);
	if (!err)
		x->task = xn_xfer_task(h, req, import ? "import_raw_vdi" : "export_raw_vdi", &err);
	if (err || check(x, &err) < 0) {
		fail(x, err);
	} else {
		x->registered = true;
		json_object_set_new(busy, x->vdi, json_string(x->task));
		if (import)
			import_start(x);
		else
			export_start(x);
	}
	leave(x);
}

int xn_vdi_transfer_init(xn_host *h, xn_error **err)
{
	transfer_dir = xn_asprintf("%s/transfer", h->data_dir);
	if (xn_rm_rf(transfer_dir, err) < 0 || xn_mkdir_p(transfer_dir, 0700, err) < 0)
		return -1;
	busy = json_object();
	xn_api_route_stream(h->api, "PUT", "/import_raw_vdi", handle, h);
	xn_api_route_stream(h->api, "GET", "/export_raw_vdi", handle, h);
	return 0;
}
