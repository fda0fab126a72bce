/* static.c: serving the built web console (static.h).
 *
 * Files are read on the thread pool (open, fstat, read), never on the
 * loop, and are not cached in memory: the browser caches them. Vite
 * names the bundles under /assets/ by their content hash, so those are
 * cacheable for a year; index.html is revalidated on every load (ETag
 * from size and modification time, 304 when unchanged), so a rebuilt
 * console is picked up at the next reload. */
#include "api/static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "util/log.h"

/* Larger files are not part of a web console. */
#define MAX_FILE (32u << 20)

/* The page may load only its own scripts and connect only back here
 * (JSON-RPC, /rrd_updates, websockets); xterm.js and noVNC set inline
 * styles, noVNC draws from blob: and data: images. */
#define PAGE_HEADERS                                                                     \
	"X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"                   \
	"Referrer-Policy: no-referrer\r\n"                                               \
	"Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; "     \
	"img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "                 \
	"frame-ancestors 'none'\r\n"

static const struct {
	const char *ext, *type;
} types[] = {
	{".html", "text/html; charset=utf-8"},  {".js", "text/javascript; charset=utf-8"},
	{".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
	{".json", "application/json"},          {".map", "application/json"},
	{".svg", "image/svg+xml"},              {".png", "image/png"},
	{".ico", "image/x-icon"},               {".woff2", "font/woff2"},
	{".woff", "font/woff"},                 {".ttf", "font/ttf"},
	{".wasm", "application/wasm"},          {".txt", "text/plain; charset=utf-8"},
};

const char *xn_static_content_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < XN_ARRAY_LEN(types); i++)
			if (strcmp(dot, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

bool xn_static_path_ok(const char *path)
{
	if (path[0] != '/')
		return false;
	if (path[1] == '\0')
		return true;
	for (const char *p = path + 1;; ) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || p[0] == '.')
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

struct job {
	uv_work_t work;
	xn_http_req *req;
	char *file;        /* absolute path */
	char *data;        /* the file, read on the pool */
	size_t len;
	int error;         /* errno, 0 on success */
	char etag[64];
};

/* On the thread pool: the whole file, or an errno. */
static void read_file(uv_work_t *w)
{
	struct job *j = w->data;
	int fd = open(j->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0) {
		j->error = errno == ELOOP ? ENOENT : errno;
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE) {
		j->error = ENOENT;
		close(fd);
		return;
	}
	snprintf(j->etag, sizeof(j->etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
			 (unsigned long long)st.st_mtim.tv_nsec);
	j->data = xn_malloc((size_t)st.st_size + 1);
	while (j->len < (size_t)st.st_size) {
		ssize_t n = read(fd, j->data + j->len, (size_t)st.st_size - j->len);
		if (n <= 0) {
			j->error = n < 0 ? errno : EIO;
			break;
		}
		j->len += (size_t)n;
	}
	close(fd);
}

static void not_found(xn_http_req *req, const char *why)
{
	xn_http_respond(req, 404, "text/plain; charset=utf-8", why, strlen(why));
}

static void answer(struct job *j)
{
	xn_http_req *req = j->req;
	const char *path = xn_http_req_path(req);
	bool asset = xn_str_has_prefix(path, "/assets/");
	XN_AUTOFREE char *headers = xn_asprintf(
		"ETag: %s\r\nCache-Control: %s\r\n%s", j->etag,
		asset ? "public, max-age=31536000, immutable" : "no-cache", PAGE_HEADERS);
	if (xn_streq(xn_http_req_header(req, "if-none-match"), j->etag)) {
		xn_http_respond_headers(req, 304, xn_static_content_type(j->file), headers, "", 0);
		return;
	}
	xn_http_respond_headers(req, 200, xn_static_content_type(j->file), headers, j->data,
				j->len);
}

static void done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	bool index = strcmp(xn_http_req_path(j->req), "/") == 0;
	if (status < 0 || j->error == ENOENT || j->error == ENOTDIR || j->error == EACCES)
		not_found(j->req, index ? "the web console is not built here: make builds build/web\n"
					: "no such page\n");
	else if (j->error)
		xn_http_respond(j->req, 500, "text/plain", "cannot read the page\n", 21);
	else
		answer(j);
	free(j->file);
	free(j->data);
	free(j);
}

static void handle(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	const char *path = xn_http_req_path(req);
	if (!xn_static_path_ok(path)) {
		not_found(req, "no such page\n");
		return;
	}
	struct job *j = xn_calloc(1, sizeof(*j));
	j->req = req;
	j->file = xn_asprintf("%s%s", h->web_dir, strcmp(path, "/") == 0 ? "/index.html" : path);
	j->work.data = j;
	uv_queue_work(h->loop, &j->work, read_file, done);
}

void xn_static_init(xn_host *h)
{
	xn_api_route(h->api, "GET", "/", handle, h);
}
