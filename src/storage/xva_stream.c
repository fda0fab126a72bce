/* xva_stream.c: XVA archives written and read on a worker thread
 * (xva_stream.h).
 *
 * The thread is a plain blocking program: libarchive over a pipe on one
 * side, libnbd's synchronous calls to a qemu-nbd of its own on the
 * other. What it shares with the loop is small and handed over under
 * `lock`: ova.xml one way and the disks to fill the other (import), the
 * final error, and a byte counter for progress. An uv_async wakes the
 * loop; a semaphore wakes the thread once the loop has answered ova.xml.
 *
 * Import checks every member before it writes a byte of it: its name
 * (only "ova.xml", then "<id>/<8 digits>" of the disk being read, with
 * rising numbers, each followed by its checksum member: anything else,
 * such as a path with "..", a link or a member of another disk, is
 * refused), its place (never past the disk's declared size) and its
 * checksum. A chunk's all-zero 64 KiB grains are not written: the new
 * image (thin, reading zeros where nothing was written) stays thin. */
#include "storage/xva_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <xxhash.h>

#define GRAIN (64 << 10)               /* zero runs this long are not written */
#define MAX_MEMBER (64 << 20)          /* the largest chunk an import holds */
#define KEEPALIVE_MS 5000              /* export: longest silence while skipping zeros */
#define STATUS_SPAN (1LL << 30)        /* export: bytes asked about per block-status call */

struct xn_xva_job {
	uv_loop_t *loop;
	uv_thread_t thread;
	uv_async_t async;
	uv_sem_t go;
	uv_mutex_t lock;
	bool import;
	int fd;
	char *compress;
	char *xml;                 /* export: to write; import: read (handed over) */
	size_t xml_len;
	xn_xva_disk *disks;        /* export: given; import: handed over by go */
	size_t n;
	struct xn_xva_cb cb;
	/* under lock */
	bool header_ready, finished;
	xn_error *err;
	/* the loop's own */
	bool header_sent;
	atomic_bool aborted;
	atomic_llong bytes;
};

/* ---- small pure helpers ---------------------------------------------------- */

void xn_xva_digest(const void *buf, size_t len, bool xxhash, char *out)
{
	if (xxhash) {
		snprintf(out, 41, "%016llX", (unsigned long long)XXH64(buf, len, 0));
		return;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_Digest(buf, len, md, &n, EVP_sha1(), NULL);
	for (unsigned int i = 0; i < n && i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

bool xn_xva_chunk_name(const char *name, const char *prefix, long *n)
{
	size_t pl = strlen(prefix);
	if (!name || strncmp(name, prefix, pl) != 0 || name[pl] != '/')
		return false;
	const char *d = name + pl + 1;
	for (int i = 0; i < 8; i++)
		if (d[i] < '0' || d[i] > '9')
			return false;
	if (d[8] != '\0')
		return false;
	*n = strtol(d, NULL, 10);
	return true;
}

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static xn_xva_disk *disks_copy(const xn_xva_disk *d, size_t n)
{
	xn_xva_disk *c = xn_calloc(n ? n : 1, sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		c[i].prefix = xn_strdup(d[i].prefix);
		c[i].image = xn_strdup(d[i].image);
		c[i].format = xn_strdup(d[i].format);
		c[i].size = d[i].size;
	}
	return c;
}

static void disks_free(xn_xva_disk *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++) {
		free(d[i].prefix);
		free(d[i].image);
		free(d[i].format);
	}
	free(d);
}

static int import_error(xn_error **err, const char *fmt, ...) XN_PRINTF(2, 3);
static int import_error(xn_error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *msg = xn_vasprintf(fmt, ap);
	va_end(ap);
	return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
}

static int archive_failed(struct archive *a, bool import, xn_error **err)
{
	const char *why = archive_error_string(a);
	if (import)
		return import_error(err, "the archive is damaged or truncated: %s",
				    why ? why : "unknown error");
	return xn_fail(err, "VDI_IO_ERROR", why ? why : "cannot write the archive", NULL);
}

/* ---- disk images through qemu-nbd ------------------------------------------- */

static bool local_image(const xn_xva_disk *d)
{
	return d->image[0] == '/';
}

/* A private qemu-nbd on d's image (started by libnbd, gone when the
 * handle closes). */
static struct nbd_handle *nbd_open(const xn_xva_disk *d, bool write, xn_error **err)
{
	struct nbd_handle *nbd = nbd_create();
	if (!nbd) {
		xn_fail(err, "SR_BACKEND_FAILURE", "qemu-nbd", "open", nbd_get_error(), NULL);
		return NULL;
	}
	if (!write)
		nbd_add_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION);
	XN_AUTOFREE char *fmt = xn_asprintf("--format=%s", d->format);
	/* a new local image nobody else reads is synced once, at the end */
	const char *mode = !write ? "--read-only" : local_image(d) ? "--cache=unsafe"
								    : "--cache=writeback";
	char *argv[] = {"qemu-nbd", fmt, (char *)mode, d->image, NULL};
	if (nbd_connect_systemd_socket_activation(nbd, argv) < 0) {
		xn_fail(err, "SR_BACKEND_FAILURE", "qemu-nbd", d->image, nbd_get_error(), NULL);
		nbd_close(nbd);
		return NULL;
	}
	return nbd;
}

static int nbd_failed(const char *what, const xn_xva_disk *d, xn_error **err)
{
	if (nbd_get_errno() == ENOSPC)
		return xn_fail(err, "SR_FULL", d->image, "no space left", NULL);
	return xn_fail(err, "VDI_IO_ERROR", what, d->image, nbd_get_error(), NULL);
}

/* Disconnect (qemu-nbd exits and closes the image); a written local
 * image is then synced. */
static int nbd_finish(struct nbd_handle *nbd, const xn_xva_disk *d, bool write, int rc,
		      xn_error **err)
{
	if (rc == 0 && write && nbd_flush(nbd, 0) < 0)
		rc = nbd_failed("flush", d, err);
	nbd_shutdown(nbd, 0);
	nbd_close(nbd);
	if (rc == 0 && write && local_image(d)) {
		int fd = open(d->image, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			rc = xn_fail(err, "VDI_IO_ERROR", "sync", d->image, strerror(errno), NULL);
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

/* ---- export ----------------------------------------------------------------- */

static int put_member(struct archive *a, const char *name, const void *buf, size_t len,
		      xn_error **err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, time(NULL), 0);
	int rc = archive_write_header(a, e);
	archive_entry_free(e);
	if (rc != ARCHIVE_OK || (len && archive_write_data(a, buf, len) != (la_ssize_t)len))
		return archive_failed(a, false, err);
	return 0;
}

/* A chunk and its checksum member. */
static int put_chunk(struct archive *a, const char *prefix, long n, const char *buf,
		     size_t len, xn_error **err)
{
	char name[64], sum[41];
	snprintf(name, sizeof(name), "%s/%08ld", prefix, n);
	if (put_member(a, name, buf, len, err) < 0)
		return -1;
	xn_xva_digest(buf, len, false, sum);
	snprintf(name, sizeof(name), "%s/%08ld.checksum", prefix, n);
	return put_member(a, name, sum, strlen(sum), err);
}

struct zero_scan {
	uint64_t start, end;   /* end: where the zeros from start stop */
	bool done;
};

static int extent_cb(void *ud, const char *ctx, uint64_t off, uint32_t *entries, size_t n,
		     int *error)
{
	struct zero_scan *z = ud;
	if (strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	for (size_t i = 0; i + 1 < n && !z->done; i += 2) {
		if (!(entries[i + 1] & LIBNBD_STATE_ZERO))
			z->done = true;
		else
			z->end += entries[i];
	}
	z->done = true;
	return 0;
}

/* How far the image reads as zeros from off (off itself if not, or if
 * the server cannot tell). */
static uint64_t zeros_from(struct nbd_handle *nbd, uint64_t off, uint64_t size)
{
	if (nbd_can_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1)
		return off;
	struct zero_scan z = {.start = off, .end = off};
	uint64_t count = size - off < (uint64_t)STATUS_SPAN ? size - off : (uint64_t)STATUS_SPAN;
	nbd_extent_callback cb = {.callback = extent_cb, .user_data = &z};
	if (nbd_block_status(nbd, count, off, cb, 0) < 0)
		return off;
	return z.end;
}

static int export_disk(xn_xva_job *j, struct archive *a, const xn_xva_disk *d, char *buf,
		       xn_error **err)
{
	struct nbd_handle *nbd = nbd_open(d, false, err);
	if (!nbd)
		return -1;
	int64_t nchunks = (d->size + XN_XVA_CHUNK - 1) / XN_XVA_CHUNK;
	uint64_t zero_end = 0, last_write = xn_now_ms();
	long number = 0;
	int rc = 0;
	for (int64_t k = 0; k < nchunks && rc == 0; k++) {
		int64_t off = k * XN_XVA_CHUNK;
		size_t len = d->size - off < XN_XVA_CHUNK ? (size_t)(d->size - off) : XN_XVA_CHUNK;
		bool must = k == 0 || k == nchunks - 1;
		if (atomic_load(&j->aborted)) {
			rc = xn_fail(err, "TASK_CANCELLED", "export", NULL);
			break;
		}
		if (xn_now_ms() - last_write > KEEPALIVE_MS) {
			/* a zero-length member keeps the client's connection alive */
			rc = put_chunk(a, d->prefix, number++, buf, 0, err);
			last_write = xn_now_ms();
			if (rc < 0)
				break;
		}
		if (!must && (uint64_t)(off + (int64_t)len) > zero_end)
			zero_end = zeros_from(nbd, (uint64_t)off, (uint64_t)d->size);
		bool zero = !must && (uint64_t)(off + (int64_t)len) <= zero_end;
		if (!zero && nbd_pread(nbd, buf, len, (uint64_t)off, 0) < 0)
			rc = nbd_failed("read", d, err);
		else if (!zero && (must || !all_zero(buf, len))) {
			rc = put_chunk(a, d->prefix, number, buf, len, err);
			last_write = xn_now_ms();
		}
		number++;
		atomic_fetch_add(&j->bytes, (long long)len);
	}
	return nbd_finish(nbd, d, false, rc, err);
}

static int export_run(xn_xva_job *j, xn_error **err)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_ustar(a);
	if (xn_streq(j->compress, "gzip"))
		archive_write_add_filter_gzip(a);
	else if (xn_streq(j->compress, "zstd"))
		archive_write_add_filter_zstd(a);
	/* whole 512-byte blocks only: no padding past the end marker */
	archive_write_set_bytes_per_block(a, 64 << 10);
	archive_write_set_bytes_in_last_block(a, 1);
	int rc = 0;
	if (archive_write_open_fd(a, j->fd) != ARCHIVE_OK)
		rc = archive_failed(a, false, err);
	if (rc == 0)
		rc = put_member(a, "ova.xml", j->xml, j->xml_len, err);
	char *buf = xn_malloc(XN_XVA_CHUNK);
	for (size_t i = 0; i < j->n && rc == 0; i++)
		rc = export_disk(j, a, &j->disks[i], buf, err);
	free(buf);
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = archive_failed(a, false, err);
	archive_write_free(a);
	return rc;
}

/* ---- import ----------------------------------------------------------------- */

/* Read the rest of the current member (exactly len bytes) into buf. */
static int read_member(struct archive *a, char *buf, size_t len, xn_error **err)
{
	for (size_t got = 0; got < len;) {
		la_ssize_t k = archive_read_data(a, buf + got, len - got);
		if (k < 0)
			return archive_failed(a, true, err);
		if (k == 0)
			return import_error(err, "the archive is truncated");
		got += (size_t)k;
	}
	return 0;
}

/* The next member, which must be a regular file: its name and size. */
static int next_member(struct archive *a, const char **name, int64_t *size, const char *expect,
		       xn_error **err)
{
	struct archive_entry *e;
	int r = archive_read_next_header(a, &e);
	if (r == ARCHIVE_EOF)
		return import_error(err, "the archive ends before %s", expect);
	if (r < ARCHIVE_WARN)
		return archive_failed(a, true, err);
	*name = archive_entry_pathname(e);
	*size = archive_entry_size(e);
	if (!*name || archive_entry_filetype(e) != AE_IFREG || *size < 0)
		return import_error(err, "unexpected member '%s' (expected %s): not a regular file",
				    *name ? *name : "", expect);
	return 0;
}

static int read_header(xn_xva_job *j, struct archive *a, xn_error **err)
{
	const char *name;
	int64_t size;
	if (next_member(a, &name, &size, "ova.xml", err) < 0)
		return -1;
	if (strcmp(name, "ova.xml") != 0)
		return import_error(err, "the first member is '%s', not ova.xml: not an XVA", name);
	if (size > XN_XVA_MAX_HEADER)
		return import_error(err, "ova.xml is too large (%lld bytes)", (long long)size);
	j->xml = xn_malloc((size_t)size + 1);
	j->xml[size] = '\0';
	j->xml_len = (size_t)size;
	return read_member(a, j->xml, (size_t)size, err);
}

/* The checksum member after chunk `name` (holding len bytes of buf). */
static int check_sum(struct archive *a, const char *chunk, const char *buf, size_t len,
		     xn_error **err)
{
	const char *name;
	int64_t size;
	XN_AUTOFREE char *expect = xn_asprintf("the checksum of '%s'", chunk);
	if (next_member(a, &name, &size, expect, err) < 0)
		return -1;
	size_t cl = strlen(chunk);
	bool xx = strncmp(name, chunk, cl) == 0 && strcmp(name + cl, ".xxhash") == 0;
	bool sha = strncmp(name, chunk, cl) == 0 && strcmp(name + cl, ".checksum") == 0;
	char text[80] = "", mine[41];
	if ((!xx && !sha) || size >= (int64_t)sizeof(text))
		return import_error(err, "unexpected member '%s' (expected %s)", name, expect);
	if (read_member(a, text, (size_t)size, err) < 0)
		return -1;
	text[strcspn(text, " \t\r\n")] = '\0';
	xn_xva_digest(buf, len, xx, mine);
	if (strcasecmp(text, mine) != 0)
		return import_error(err, "checksum mismatch in '%s': the archive says '%s', the "
				    "data gives '%s'", chunk, text, mine);
	return 0;
}

static size_t grain(size_t len, size_t i)
{
	return len - i < GRAIN ? len - i : GRAIN;
}

/* Write each run of the chunk's grains that are not all zeros. */
static int write_grains(struct nbd_handle *nbd, const xn_xva_disk *d, const char *buf,
			size_t len, int64_t off, xn_error **err)
{
	for (size_t i = 0; i < len;) {
		if (all_zero(buf + i, grain(len, i))) {
			i += grain(len, i);
			continue;
		}
		size_t start = i;
		while (i < len && !all_zero(buf + i, grain(len, i)))
			i += grain(len, i);
		if (nbd_pwrite(nbd, buf + start, i - start, (uint64_t)(off + (int64_t)start), 0) < 0)
			return nbd_failed("write", d, err);
	}
	return 0;
}

struct reading {
	int64_t off;        /* where the next chunk goes after a gap of none */
	long last;          /* the last chunk number, -1 before the first */
	int64_t first_len;  /* the first chunk's length: a gap counts in these */
	char *buf;
	size_t cap;
};

static int import_chunk(xn_xva_job *j, struct archive *a, const xn_xva_disk *d,
			struct nbd_handle *nbd, struct reading *r, xn_error **err)
{
	const char *name;
	int64_t len;
	long n;
	XN_AUTOFREE char *expect = xn_asprintf("the chunks of disk '%s' (%lld of %lld bytes read)",
					       d->prefix, (long long)r->off, (long long)d->size);
	if (next_member(a, &name, &len, expect, err) < 0)
		return -1;
	if (!xn_xva_chunk_name(name, d->prefix, &n) || n <= r->last)
		return import_error(err, "unexpected member '%s' (expected %s)", name, expect);
	if (len > MAX_MEMBER)
		return import_error(err, "chunk '%s' is too large (%lld bytes)", name,
				    (long long)len);
	if (r->first_len < 0)
		r->first_len = len > 0 ? len : XN_XVA_CHUNK;
	int64_t off = r->off + (int64_t)(n - r->last - 1) * r->first_len;
	if (off + len > d->size)
		return import_error(err, "chunk '%s' lies past the end of disk '%s' (%lld bytes)",
				    name, d->prefix, (long long)d->size);
	if ((size_t)len > r->cap) {
		r->buf = xn_realloc(r->buf, (size_t)len);
		r->cap = (size_t)len;
	}
	XN_AUTOFREE char *chunk = xn_strdup(name);
	if (read_member(a, r->buf, (size_t)len, err) < 0 ||
	    check_sum(a, chunk, r->buf, (size_t)len, err) < 0 ||
	    write_grains(nbd, d, r->buf, (size_t)len, off, err) < 0)
		return -1;
	r->off = off + len;
	r->last = n;
	atomic_store(&j->bytes, (long long)archive_filter_bytes(a, -1));
	return 0;
}

static int import_disk(xn_xva_job *j, struct archive *a, const xn_xva_disk *d, xn_error **err)
{
	struct nbd_handle *nbd = nbd_open(d, true, err);
	if (!nbd)
		return -1;
	struct reading r = {.last = -1, .first_len = -1};
	int rc = 0;
	while (rc == 0 && r.off < d->size) {
		if (atomic_load(&j->aborted))
			rc = xn_fail(err, "TASK_CANCELLED", "import", NULL);
		else
			rc = import_chunk(j, a, d, nbd, &r, err);
	}
	free(r.buf);
	return nbd_finish(nbd, d, true, rc, err);
}

static int by_prefix(const void *a, const void *b)
{
	return strcmp(((const xn_xva_disk *)a)->prefix, ((const xn_xva_disk *)b)->prefix);
}

static void signal_loop(xn_xva_job *j, bool header, bool finished, xn_error *err)
{
	uv_mutex_lock(&j->lock);
	j->header_ready |= header;
	j->finished |= finished;
	if (finished)
		j->err = err;
	uv_mutex_unlock(&j->lock);
	uv_async_send(&j->async);
}

static int import_run(xn_xva_job *j, xn_error **err)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	int rc = 0;
	if (archive_read_open_fd(a, j->fd, 1 << 20) != ARCHIVE_OK)
		rc = archive_failed(a, true, err);
	if (rc == 0)
		rc = read_header(j, a, err);
	if (rc == 0) {
		signal_loop(j, true, false, NULL);
		uv_sem_wait(&j->go);
		if (atomic_load(&j->aborted))
			rc = xn_fail(err, "TASK_CANCELLED", "import", NULL);
	}
	/* disks are streamed in the order of their ids (xapi's vdi_ordering) */
	if (rc == 0)
		qsort(j->disks, j->n, sizeof(*j->disks), by_prefix);
	for (size_t i = 0; i < j->n && rc == 0; i++)
		rc = import_disk(j, a, &j->disks[i], err);
	struct archive_entry *e;
	int r = rc == 0 ? archive_read_next_header(a, &e) : ARCHIVE_EOF;
	if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
		rc = import_error(err, "unexpected member '%s' after the last disk",
				  archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
	else if (r != ARCHIVE_EOF)
		rc = archive_failed(a, true, err);
	archive_read_free(a);
	return rc;
}

/* ---- the thread and the loop -------------------------------------------------- */

int xn_xva_pipe(uv_loop_t *loop, uv_pipe_t *p, void *ud, bool loop_reads, int *thread_fd,
		xn_error **err)
{
	uv_file fds[2];
	int rc = uv_pipe(fds, 0, 0);
	if (rc < 0)
		return xn_fail_internal(err, "pipe: %s", uv_strerror(rc));
	fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups; the default is 64 KiB */
	uv_pipe_init(loop, p, 0);
	p->data = ud;
	uv_pipe_open(p, loop_reads ? fds[0] : fds[1]);
	*thread_fd = loop_reads ? fds[1] : fds[0];
	return 0;
}

static void thread_main(void *arg)
{
	xn_xva_job *j = arg;
	xn_error *err = NULL;
	int rc = j->import ? import_run(j, &err) : export_run(j, &err);
	close(j->fd);
	j->fd = -1;
	signal_loop(j, false, true, rc < 0 ? err : NULL);
}

static void job_free(uv_handle_t *handle)
{
	xn_xva_job *j = handle->data;
	uv_sem_destroy(&j->go);
	uv_mutex_destroy(&j->lock);
	disks_free(j->disks, j->n);
	free(j->xml);
	free(j->compress);
	free(j);
}

static void on_async(uv_async_t *async)
{
	xn_xva_job *j = async->data;
	uv_mutex_lock(&j->lock);
	bool header = j->header_ready && !j->header_sent;
	bool finished = j->finished;
	xn_error *err = j->err;
	j->err = NULL;
	uv_mutex_unlock(&j->lock);
	if (header) {
		j->header_sent = true;
		j->cb.header(j->cb.ud, j->xml, j->xml_len);
	}
	if (finished) {
		uv_thread_join(&j->thread);
		j->cb.done(j->cb.ud, err);
		uv_close((uv_handle_t *)&j->async, job_free);
	}
}

static xn_xva_job *job_start(uv_loop_t *loop, int fd, bool import, const struct xn_xva_cb *cb,
			     xn_xva_job *j, xn_error **err)
{
	j->loop = loop;
	j->fd = fd;
	j->import = import;
	j->cb = *cb;
	uv_sem_init(&j->go, 0);
	uv_mutex_init(&j->lock);
	uv_async_init(loop, &j->async, on_async);
	j->async.data = j;
	int rc = uv_thread_create(&j->thread, thread_main, j);
	if (rc < 0) {
		close(fd);
		xn_fail_internal(err, "cannot start a thread: %s", uv_strerror(rc));
		uv_close((uv_handle_t *)&j->async, job_free);
		return NULL;
	}
	return j;
}

xn_xva_job *xn_xva_export_start(uv_loop_t *loop, int fd, const char *xml,
				const xn_xva_disk *disks, size_t n, const char *compress,
				const struct xn_xva_cb *cb, xn_error **err)
{
	xn_xva_job *j = xn_calloc(1, sizeof(*j));
	j->xml = xn_strdup(xml);
	j->xml_len = strlen(xml);
	j->disks = disks_copy(disks, n);
	j->n = n;
	j->compress = xn_strdup(compress);
	return job_start(loop, fd, false, cb, j, err);
}

xn_xva_job *xn_xva_import_start(uv_loop_t *loop, int fd, const struct xn_xva_cb *cb,
				xn_error **err)
{
	return job_start(loop, fd, true, cb, xn_calloc(1, sizeof(xn_xva_job)), err);
}

void xn_xva_job_go(xn_xva_job *j, const xn_xva_disk *disks, size_t n)
{
	uv_mutex_lock(&j->lock);
	j->disks = disks_copy(disks, n);
	j->n = n;
	uv_mutex_unlock(&j->lock);
	uv_sem_post(&j->go);
}

void xn_xva_job_abort(xn_xva_job *j)
{
	if (!atomic_exchange(&j->aborted, true))
		uv_sem_post(&j->go);
}

int64_t xn_xva_job_bytes(const xn_xva_job *j)
{
	return atomic_load(&j->bytes);
}
