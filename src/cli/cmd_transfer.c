/* cmd_transfer.c: `xe vdi-import` and `xe vdi-export` (xenapi.md §4.4):
 * a disk image from a file into an existing VDI, or out of one, over
 * the daemon's PUT /import_raw_vdi and GET /export_raw_vdi.
 *
 * libcurl moves the bytes over the same Unix socket or HTTP(S)
 * connection as the API calls, with the session in the query. The file
 * streams: nothing is held whole. An upload asks "Expect: 100-continue",
 * so the daemon names the transfer's task before the body goes; with
 * --progress the task's progress is polled (on the API connection,
 * from curl's progress callback) and drawn on stderr. An export written
 * to a regular file skips the zero blocks (the file stays sparse);
 * filename=- is stdin or stdout. A failure prints the XenAPI error of
 * the answer, or else of the task, and leaves no partial export file. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

#define GRAIN (64 * 1024)        /* zero runs this long become holes */
#define POLL_MS 500

struct xfer {
	xe_ctx *ctx;
	CURL *h;
	int fd;
	bool import, progress, sparse;
	bool in_place;           /* the daemon reads or writes the file itself */
	char *task;              /* from the task-id header */
	xn_buf error;            /* the body of an answer that is not 200 */
	xn_buf pending;          /* export: bytes not yet written (sparse files) */
	int64_t offset;          /* export: where pending goes */
	uint64_t polled_ms;
	int shown;               /* the last percentage drawn, -1 none */
	int write_errno;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	static const char name[] = "task-id:";
	if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
		const char *v = p + sizeof(name) - 1;
		const char *end = p + len;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
			end--;
		free(x->task);
		x->task = xn_strndup(v, (size_t)(end - v));
	}
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	ssize_t k;
	while ((k = read(x->fd, p, size * n)) < 0 && errno == EINTR)
		;
	if (k < 0) {
		x->write_errno = errno;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)k;
}

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write all of p at off, or (off < 0) where the file is (a pipe). */
static int put(int fd, const char *p, size_t n, int64_t off)
{
	for (ssize_t k; n; p += k, n -= (size_t)k) {
		k = off >= 0 ? pwrite(fd, p, n, off) : write(fd, p, n);
		if (k < 0 && errno == EINTR)
			k = 0;
		else if (k <= 0)
			return -1;
		else if (off >= 0)
			off += k;
	}
	return 0;
}

/* Export bytes out: whole grains of zeros are skipped in a regular file. */
static int flush_pending(struct xfer *x, bool all)
{
	size_t done = 0;
	while (x->pending.len - done >= GRAIN || (all && done < x->pending.len)) {
		size_t n = x->pending.len - done < GRAIN ? x->pending.len - done : GRAIN;
		const char *p = x->pending.data + done;
		if (!all_zero(p, n) && put(x->fd, p, n, x->offset) < 0)
			return -1;
		x->offset += (int64_t)n;
		done += n;
	}
	xn_buf_consume(&x->pending, done);
	return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 || x->import) {
		if (x->error.len < 65536)
			xn_buf_append(&x->error, p, len);
		return len;
	}
	int rc;
	if (x->sparse) {
		xn_buf_append(&x->pending, p, len);
		rc = flush_pending(x, false);
	} else {
		rc = put(x->fd, p, len, -1);
	}
	if (rc < 0) {
		x->write_errno = errno;
		return 0; /* curl stops */
	}
	return len;
}

/* --progress: the task's progress as a bar on stderr. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct xfer *x = ud;
	if (!x->progress || !x->task || now_ms() - x->polled_ms < POLL_MS)
		return 0;
	x->polled_ms = now_ms();
	XN_AUTOERR xn_error *err = NULL;
	json_t *p = xe_call(x->ctx->conn, "task.get_progress", json_pack("[s]", x->task), &err);
	if (json_is_number(p)) {
		int pct = (int)(json_number_value(p) * 100);
		if (pct != x->shown) {
			char bar[41];
			memset(bar, '#', (size_t)pct * 40 / 100);
			memset(bar + pct * 40 / 100, '.', 40 - (size_t)pct * 40 / 100);
			bar[40] = '\0';
			fprintf(stderr, "\r[%s] %3d%%", bar, pct);
			x->shown = pct;
		}
	}
	json_decref(p);
	return 0;
}

/* "&name=value" with value escaped, or "" for a NULL value (caller frees). */
static char *query_arg(const char *name, const char *value)
{
	if (!value)
		return xn_strdup("");
	char *v = curl_easy_escape(NULL, value, 0);
	char *arg = xn_asprintf("&%s=%s", name, v);
	curl_free(v);
	return arg;
}

/* The URL of path?session_id=S<query> on the daemon xe talks to (query
 * made of query_arg pieces; caller frees). */
static char *transfer_url(xe_ctx *ctx, const char *path, const char *query)
{
	const xe_target *t = xe_conn_target(ctx->conn);
	char *s = curl_easy_escape(NULL, xe_conn_session(ctx->conn), 0);
	char *url = t->socket ? xn_asprintf("http://localhost%s?session_id=%s%s", path, s, query)
			      : xn_asprintf("%s://%s:%d%s?session_id=%s%s",
					    t->tls ? "https" : "http", t->host, t->port, path, s,
					    query);
	curl_free(s);
	return url;
}

/* Why the transfer failed: the answer's ["CODE", params...], else the
 * task's error_info, else curl's reason. */
static int transfer_error(struct xfer *x, CURLcode rc, long status, xn_error **err)
{
	json_t *e = json_loadb(x->error.data ? x->error.data : "", x->error.len, 0, NULL);
	if (!json_is_array(e) && x->task) {
		json_decref(e);
		XN_AUTOERR xn_error *ignored = NULL;
		e = xe_call(x->ctx->conn, "task.get_error_info", json_pack("[s]", x->task), &ignored);
	}
	if (json_is_array(e) && json_array_size(e) > 0) {
		XN_AUTOSTRV char **params = xn_strv_new();
		for (size_t i = 1; i < json_array_size(e); i++)
			xn_strv_push(&params, json_string_value(json_array_get(e, i)) ?: "");
		XN_AUTOFREE char *code = xn_strdup(json_string_value(json_array_get(e, 0)));
		json_decref(e);
		return xn_failv(err, code ? code : "INTERNAL_ERROR", params);
	}
	json_decref(e);
	if (x->write_errno)
		return xe_fail(err, "Error: %s", strerror(x->write_errno));
	if (rc != CURLE_OK)
		return xe_fail(err, "Error: cannot reach %s: %s", xe_conn_where(x->ctx->conn),
			       curl_easy_strerror(rc));
	return xe_fail(err, "Error: %s answered HTTP %ld", xe_conn_where(x->ctx->conn), status);
}

static int run(struct xfer *x, const char *url, xn_error **err)
{
	const xe_target *t = xe_conn_target(x->ctx->conn);
	x->h = curl_easy_init();
	curl_easy_setopt(x->h, CURLOPT_URL, url);
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	if (t->socket)
		curl_easy_setopt(x->h, CURLOPT_UNIX_SOCKET_PATH, t->socket);
	/* Self-signed host certificates, as for the API calls (rpc.c). */
	curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(x->h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(x->h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x->h, CURLOPT_BUFFERSIZE, 512L << 10);
	struct curl_slist *hdrs = NULL;
	if (x->in_place) {
		if (x->import)
			curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "PUT");
	} else if (x->import) {
		struct stat st;
		curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x->h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(x->h, CURLOPT_READDATA, x);
		curl_easy_setopt(x->h, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
		/* a pipe's length is unknown: chunked */
		if (fstat(x->fd, &st) == 0 && S_ISREG(st.st_mode))
			curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
		/* the task is named before the body goes (10 s: qemu-nbd starting) */
		hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
		curl_easy_setopt(x->h, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hdrs);
	}
	CURLcode rc = curl_easy_perform(x->h);
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status == 200 && x->sparse && flush_pending(x, true) < 0)
		x->write_errno = errno;
	if (rc == CURLE_OK && status == 200 && x->sparse && ftruncate(x->fd, x->offset) < 0)
		x->write_errno = errno;
	if (x->shown >= 0)
		fprintf(stderr, rc == CURLE_OK && status == 200 ? "\r[%.40s] 100%%\n" : "\n",
			"########################################");
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(x->h);
	if (rc == CURLE_OK && status == 200 && !x->write_errno)
		return 0;
	return transfer_error(x, rc, status, err);
}

/* The file to read (import) or write; "-" is stdin or stdout. *created
 * says whether an export made it (to remove it if the export fails). */
static int open_file(const char *file, bool import, bool *created, xn_error **err)
{
	int fd;
	if (strcmp(file, "-") == 0) {
		fd = import ? STDIN_FILENO : STDOUT_FILENO;
	} else if (import) {
		fd = open(file, O_RDONLY | O_CLOEXEC);
	} else {
		fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		*created = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC);
	}
	if (fd < 0)
		return xe_fail(err, "Error: cannot open '%s': %s", file, strerror(errno));
	return fd;
}

static int transfer(xe_ctx *ctx, bool import, xn_error **err)
{
	const char *file = xe_arg(ctx->args, "filename");
	const char *format = xe_arg(ctx->args, "format");
	struct xfer x = {.ctx = ctx, .import = import, .shown = -1,
			 .progress = xe_arg_flag(ctx->args, "progress")};
	bool std = strcmp(file, "-") == 0;
	bool created = false;
	if ((x.fd = open_file(file, import, &created, err)) < 0)
		return -1;
	struct stat st;
	bool regular = !std && fstat(x.fd, &st) == 0 && S_ISREG(st.st_mode);
	x.sparse = !import && regular;
	/* On the host (the local socket) a regular file is read or written
	 * by the daemon's qemu-img in place: no copy through the connection.
	 * The task is made first, so that --progress follows it from the
	 * start. */
	XN_AUTOFREE char *abs = NULL;
	if (xe_conn_target(ctx->conn)->socket && regular && !getenv("XE_STREAM") &&
	    (abs = realpath(file, NULL))) {
		XN_AUTOERR xn_error *ignored = NULL;
		json_t *t = xe_call(ctx->conn, "task.create",
				    json_pack("[ss]", import ? "vdi-import" : "vdi-export", abs),
				    &ignored);
		if (json_is_string(t)) {
			x.task = xn_strdup(json_string_value(t));
			x.in_place = true;
			x.sparse = false;
		}
		json_decref(t);
	}
	XN_AUTOFREE char *q1 = query_arg("vdi", xe_arg(ctx->args, "uuid"));
	XN_AUTOFREE char *q2 = query_arg("format", format ? format : "raw");
	XN_AUTOFREE char *q3 = query_arg("path", x.in_place ? abs : NULL);
	XN_AUTOFREE char *q4 = query_arg("task_id", x.in_place ? x.task : NULL);
	XN_AUTOFREE char *query = xn_asprintf("%s%s%s%s", q1, q2, q3, q4);
	XN_AUTOFREE char *url = transfer_url(ctx, import ? "/import_raw_vdi" : "/export_raw_vdi",
					     query);
	int rc = run(&x, url, err);
	if (!std)
		close(x.fd);
	if (rc < 0 && created)
		unlink(file);
	free(x.task);
	xn_buf_reset(&x.error);
	xn_buf_reset(&x.pending);
	return rc;
}

int xe_cmd_vdi_import(xe_ctx *ctx, xn_error **err)
{
	return transfer(ctx, true, err);
}

int xe_cmd_vdi_export(xe_ctx *ctx, xn_error **err)
{
	return transfer(ctx, false, err);
}

/* ---- whole VMs as XVA archives ------------------------------------------------ */

/* The VM, template or snapshot that uuid= or vm= (a uuid or a name)
 * names (caller frees). */
static char *any_vm(xe_ctx *ctx, xn_error **err)
{
	const char *uuid = xe_arg(ctx->args, "uuid");
	const char *vm = uuid ? uuid : xe_arg(ctx->args, "vm");
	if (!vm)
		return xe_fail(err, "Required parameter not found: vm"), NULL;
	XN_AUTOERR xn_error *ignored = NULL;
	json_t *ref = xe_call(ctx->conn, "VM.get_by_uuid", json_pack("[s]", vm), &ignored);
	if (!ref && !uuid) {
		json_t *refs = xe_call(ctx->conn, "VM.get_by_name_label", json_pack("[s]", vm), err);
		if (json_array_size(refs) == 1)
			ref = json_incref(json_array_get(refs, 0));
		else if (refs)
			xe_fail(err, json_array_size(refs) ? "Multiple matches: name '%s' names "
				"several VMs; use uuid=" : "No VM named '%s'", vm);
		json_decref(refs);
	} else if (!ref) {
		xe_fail(err, "No VM with uuid '%s'", vm);
	}
	char *r = json_is_string(ref) ? xn_strdup(json_string_value(ref)) : NULL;
	json_decref(ref);
	return r;
}

/* vm-export vm= filename= [compress=true|gzip|zstd], or vm-import
 * filename= [sr-uuid=] [preserve=true], each [--metadata] [--progress];
 * an import prints the new VM's uuid (the answer's body is its ref). */
static int xva_transfer(xe_ctx *ctx, bool import, xn_error **err)
{
	const char *file = xe_arg(ctx->args, "filename");
	XN_AUTOFREE char *vm = import ? NULL : any_vm(ctx, err);
	if (!import && !vm)
		return -1;
	bool created = false;
	struct xfer x = {.ctx = ctx, .import = import, .shown = -1,
			 .progress = xe_arg_flag(ctx->args, "progress")};
	if ((x.fd = open_file(file, import, &created, err)) < 0)
		return -1;
	XN_AUTOFREE char *q1 = query_arg(import ? "sr_uuid" : "ref",
					 import ? xe_arg(ctx->args, "sr-uuid") : vm);
	XN_AUTOFREE char *q2 = import ? query_arg("restore", xe_arg_flag(ctx->args, "preserve")
								 ? "true" : NULL)
				      : query_arg("use_compression", xe_arg(ctx->args, "compress"));
	XN_AUTOFREE char *query = xn_asprintf("%s%s", q1, q2);
	bool metadata = xe_arg_flag(ctx->args, "metadata");
	const char *path = import ? (metadata ? "/import_metadata" : "/import")
				  : (metadata ? "/export_metadata" : "/export");
	XN_AUTOFREE char *url = transfer_url(ctx, path, query);
	int rc = run(&x, url, err);
	if (strcmp(file, "-") != 0)
		close(x.fd);
	if (rc < 0 && created)
		unlink(file);
	free(x.task);
	json_t *ref = rc == 0 && import ? json_stringn(x.error.data ? x.error.data : "", x.error.len)
					: NULL;
	xn_buf_reset(&x.error);
	return rc < 0 || !import ? rc : xe_print_new_uuid(ctx, "VM", ref, err);
}

int xe_cmd_vm_export(xe_ctx *ctx, xn_error **err)
{
	return xva_transfer(ctx, false, err);
}

/* The import format= names, else the file name's extension says
 * (NULL: an XVA). */
static const char *image_format(xe_ctx *ctx, xn_error **err)
{
	static const char *const ext[][2] = {{".ova", "ova"},   {".qcow2", "qcow2"},
					     {".vmdk", "vmdk"}, {".vhd", "vhd"},
					     {".img", "raw"},   {".raw", "raw"}};
	const char *f = xe_arg(ctx->args, "format");
	const char *file = xe_arg(ctx->args, "filename");
	if (f)
		return strcmp(f, "xva") == 0 ? NULL : f;
	size_t n = file ? strlen(file) : 0;
	for (size_t i = 0; i < XN_ARRAY_LEN(ext); i++) {
		size_t m = strlen(ext[i][0]);
		if (n > m && strcasecmp(file + n - m, ext[i][0]) == 0)
			return ext[i][1];
	}
	(void)err;
	return NULL;
}

/* Upload fd (-1: the file filename= names) to PUT /import_image as
 * format; the new VM's uuid is printed. */
static int image_import(xe_ctx *ctx, const char *format, int fd, xn_error **err)
{
	const char *file = xe_arg(ctx->args, "filename");
	bool created = false;
	struct xfer x = {.ctx = ctx, .import = true, .shown = -1, .fd = fd,
			 .progress = xe_arg_flag(ctx->args, "progress")};
	if (fd < 0 && (x.fd = open_file(file, true, &created, err)) < 0)
		return -1;
	const char *name = file ? file : xe_arg(ctx->args, "source");
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	XN_AUTOFREE char *stem = xn_strndup(base, strcspn(base, "."));
	const char *label = xe_arg(ctx->args, "name-label");
	bool named_inside = strcmp(format, "ova") == 0 || strcmp(name, "-") == 0 || !*stem;
	XN_AUTOFREE char *q1 = query_arg("format", format);
	XN_AUTOFREE char *q2 = query_arg("sr_uuid", xe_arg(ctx->args, "sr-uuid"));
	XN_AUTOFREE char *q3 = query_arg("name", label ? label : named_inside ? NULL : stem);
	XN_AUTOFREE char *query = xn_asprintf("%s%s%s", q1, q2, q3);
	XN_AUTOFREE char *url = transfer_url(ctx, "/import_image", query);
	int rc = run(&x, url, err);
	if (fd < 0 && strcmp(file, "-") != 0)
		close(x.fd);
	free(x.task);
	json_t *ref = rc == 0 ? json_stringn(x.error.data ? x.error.data : "", x.error.len) : NULL;
	xn_buf_reset(&x.error);
	return rc < 0 ? rc : xe_print_new_uuid(ctx, "VM", ref, err);
}

int xe_cmd_vm_import(xe_ctx *ctx, xn_error **err)
{
	const char *format = image_format(ctx, err);
	if (format && !xe_arg_flag(ctx->args, "metadata"))
		return image_import(ctx, format, -1, err);
	return xva_transfer(ctx, true, err);
}

/* p2v source=DIR|TARBALL|ssh://[user@]host: a root file system as a tar
 * (tar reads a directory, ssh runs tar on the machine; a tarball goes as
 * it is) uploaded as format=rootfs. The source is only read. */
int xe_cmd_p2v(xe_ctx *ctx, xn_error **err)
{
	const char *src = xe_arg(ctx->args, "source");
	struct stat st;
	bool remote = strncmp(src, "ssh://", 6) == 0;
	if (!remote && stat(src, &st) < 0)
		return xe_fail(err, "Cannot read source '%s': %s", src, strerror(errno));
	if (!remote && !S_ISDIR(st.st_mode)) {
		XN_AUTOCLOSE int fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return xe_fail(err, "Cannot read source '%s': %s", src, strerror(errno));
		return image_import(ctx, "rootfs", fd, err);
	}
	char *local[] = {"tar", "-C", (char *)src, "--numeric-owner", "--one-file-system",
			 "-cf", "-", ".", NULL};
	char *ssh[] = {"ssh", "-o", "BatchMode=yes", (char *)src + 6, "tar", "-C", "/",
		       "--numeric-owner", "--one-file-system", "-cf", "-", ".", NULL};
	char **argv = remote ? ssh : local;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return xe_fail(err, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	int rc = pid < 0 ? xe_fail(err, "fork: %s", strerror(errno))
			 : image_import(ctx, "rootfs", p[0], err);
	close(p[0]);
	int status = 0;
	if (pid > 0 && waitpid(pid, &status, 0) == pid && rc == 0 &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		fprintf(stderr, "Warning: '%s' exited with status %d: the copy may be incomplete\n",
			argv[0], WEXITSTATUS(status));
	return rc;
}
