/* console.c: the serial console hub (console.h).
 *
 * One hub per running VM: a connection to QEMU's serial socket (the
 * daemon is its only client), a ring buffer of recent output, and the
 * readers attached through CONNECT /console (xe console: a raw tunnel)
 * or a websocket on GET /console (the web console: binary messages of
 * raw bytes both ways). Output goes to every reader; any reader's input
 * goes to the guest. A hub whose QEMU socket is not there yet retries; a
 * hub whose VM stopped closes its readers. GET /console on a console
 * whose protocol is rfb is the VM's VNC display instead (vnc.c). */
#include "console/console.h"

#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/websocket.h"
#include "console/vnc.h"
#include "util/log.h"

/* A reader is a tunnel (t) or a websocket (ws). */
struct reader {
	xn_http_tunnel *t;
	xn_ws *ws;
	struct hub *hub;
	struct reader *next;
};

struct hub {
	xn_host *h;
	char *vm, *path;
	uv_pipe_t *pipe;         /* NULL while not connected */
	uv_timer_t *retry;
	int tries;
	char ring[XN_CONSOLE_SCROLLBACK];
	size_t head, len;        /* ring: len bytes ending at head */
	struct reader *readers;
	struct hub *next;
};

static struct hub *hubs;

static struct hub *find_hub(const char *vm)
{
	for (struct hub *b = hubs; b; b = b->next)
		if (strcmp(b->vm, vm) == 0)
			return b;
	return NULL;
}

static void ring_put(struct hub *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		b->ring[b->head] = p[i];
		b->head = (b->head + 1) % sizeof(b->ring);
	}
	b->len = b->len + n > sizeof(b->ring) ? sizeof(b->ring) : b->len + n;
}

/* The last n bytes of scroll-back, oldest first (caller frees). */
static char *ring_tail(struct hub *b, size_t n, size_t *out)
{
	if (n > b->len)
		n = b->len;
	char *s = xn_malloc(n + 1);
	size_t start = (b->head + sizeof(b->ring) - n) % sizeof(b->ring);
	for (size_t i = 0; i < n; i++)
		s[i] = b->ring[(start + i) % sizeof(b->ring)];
	*out = n;
	return s;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	buf->base = xn_malloc(16384);
	buf->len = 16384;
}

static void connect_later(struct hub *b);

static void on_pipe_closed(uv_handle_t *h)
{
	free(h);
}

static void reader_write(struct reader *r, const char *buf, size_t n)
{
	if (r->ws)
		xn_ws_send(r->ws, buf, n, true);
	else
		xn_http_tunnel_write(r->t, buf, n);
}

static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hub *b = s->data;
	if (n > 0) {
		ring_put(b, buf->base, (size_t)n);
		/* a tunnel reader too far behind is closed (and freed) by its write */
		for (struct reader *r = b->readers, *next; r; r = next) {
			next = r->next;
			reader_write(r, buf->base, (size_t)n);
		}
	}
	free(buf->base);
	if (n < 0) {
		uv_close((uv_handle_t *)b->pipe, on_pipe_closed);
		b->pipe = NULL;
	}
}

struct conn_req {
	uv_connect_t req;
	struct hub *hub;
	uv_pipe_t *pipe;
};

static void on_connected(uv_connect_t *req, int status)
{
	struct conn_req *cr = (struct conn_req *)req;
	struct hub *b = cr->hub;
	if (!b) { /* the hub went away meanwhile */
		uv_close((uv_handle_t *)cr->pipe, on_pipe_closed);
		free(cr);
		return;
	}
	b->retry->data = b;
	if (status < 0) {
		uv_close((uv_handle_t *)cr->pipe, on_pipe_closed);
		free(cr);
		connect_later(b);
		return;
	}
	b->pipe = cr->pipe;
	b->pipe->data = b;
	free(cr);
	uv_read_start((uv_stream_t *)b->pipe, on_alloc, on_output);
}

static void try_connect(uv_timer_t *t)
{
	struct hub *b = t->data;
	struct conn_req *cr = xn_calloc(1, sizeof(*cr));
	cr->hub = b;
	cr->pipe = xn_calloc(1, sizeof(uv_pipe_t));
	uv_pipe_init(b->h->loop, cr->pipe, 0);
	t->data = cr; /* lets detach disown a connect in flight */
	uv_pipe_connect(&cr->req, cr->pipe, b->path, on_connected);
}

static void connect_later(struct hub *b)
{
	if (++b->tries > 300) {
		xn_warn("console: cannot connect to '%s'", b->path);
		return;
	}
	uv_timer_start(b->retry, try_connect, 20, 0);
}

void xn_console_attach(xn_host *h, const char *vm_ref, const char *sock_path)
{
	if (find_hub(vm_ref))
		return;
	struct hub *b = xn_calloc(1, sizeof(*b));
	b->h = h;
	b->vm = xn_strdup(vm_ref);
	b->path = sock_path ? xn_strdup(sock_path)
			    : xn_asprintf("%s/%s/console.sock", h->run_dir,
					  xn_db_str(h->db, vm_ref, "uuid"));
	b->retry = xn_calloc(1, sizeof(uv_timer_t));
	uv_timer_init(h->loop, b->retry);
	b->retry->data = b;
	b->next = hubs;
	hubs = b;
	try_connect(b->retry);
}

void xn_console_detach(xn_host *h, const char *vm_ref)
{
	(void)h;
	struct hub *b = find_hub(vm_ref);
	if (!b)
		return;
	for (struct hub **p = &hubs; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			break;
		}
	while (b->readers) {
		struct reader *r = b->readers;
		b->readers = r->next;
		r->hub = NULL;
		if (r->ws)
			xn_ws_close(r->ws, 1000, "the VM stopped");
		else
			xn_http_tunnel_close(r->t);
		free(r);
	}
	if (b->retry->data != b) /* a connect is in flight: disown it */
		((struct conn_req *)b->retry->data)->hub = NULL;
	uv_close((uv_handle_t *)b->retry, (uv_close_cb)free);
	if (b->pipe)
		uv_close((uv_handle_t *)b->pipe, on_pipe_closed);
	free(b->vm);
	free(b->path);
	free(b);
}

/* ---- readers -------------------------------------------------------- */

static void on_input_written(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
	free(w);
}

static void reader_input(void *ud, const char *buf, size_t len)
{
	struct reader *r = ud;
	if (!r->hub || !r->hub->pipe)
		return;
	char *copy = xn_malloc(len);
	memcpy(copy, buf, len);
	uv_buf_t b = uv_buf_init(copy, (unsigned)len);
	/* Keystrokes are tiny: a synchronous try-write, or queue. */
	int n = uv_try_write((uv_stream_t *)r->hub->pipe, &b, 1);
	if (n < 0)
		n = 0;
	if ((size_t)n < len) {
		uv_write_t *w = xn_calloc(1, sizeof(*w));
		uv_buf_t rest = uv_buf_init(copy + n, (unsigned)(len - (size_t)n));
		w->data = copy;
		if (uv_write(w, (uv_stream_t *)r->hub->pipe, &rest, 1, on_input_written) == 0)
			return;
		free(w);
	}
	free(copy);
}

static void reader_closed(void *ud)
{
	struct reader *r = ud;
	struct hub *b = r->hub;
	if (b)
		for (struct reader **p = &b->readers; *p; p = &(*p)->next)
			if (*p == r) {
				*p = r->next;
				break;
			}
	free(r);
}

static void deny(xn_http_req *req, int status, const char *why)
{
	xn_http_respond(req, status, "text/plain", why, strlen(why));
}

/* The console record a request names (?ref= or ?uuid=), after checking
 * its session (?session_id=) has the vm-operator role. NULL if the
 * request was refused (and answered). */
static const char *find_console(xn_host *h, xn_http_req *req)
{
	const char *session = xn_http_req_query(req, "session_id");
	if (xn_api_session_role(h->api, session) < XN_ROLE_VM_OPERATOR) {
		deny(req, 403, "a valid session with the vm-operator role is needed\n");
		return NULL;
	}
	const char *ref = xn_http_req_query(req, "ref");
	const char *uuid = xn_http_req_query(req, "uuid");
	const xn_class *cc = xn_model_class("console");
	if (!ref && uuid)
		ref = xn_db_ref_by_uuid(h->db, cc, uuid);
	if (!ref || xn_db_class_of(h->db, ref) != cc) {
		deny(req, 404, "no such console\n");
		return NULL;
	}
	return ref;
}

/* The hub of a console's VM, or NULL (request answered 404). */
static struct hub *console_hub(xn_host *h, xn_http_req *req, const char *ref)
{
	struct hub *b = find_hub(xn_db_str(h->db, ref, "VM"));
	if (!b)
		deny(req, 404, "the VM is not running\n");
	return b;
}

static struct reader *add_reader(struct hub *b)
{
	struct reader *r = xn_calloc(1, sizeof(*r));
	r->hub = b;
	r->next = b->readers;
	b->readers = r;
	return r;
}

/* How much past output a request asks for (?scrollback=N bytes). */
static size_t scrollback_wanted(xn_http_req *req)
{
	const char *sb = xn_http_req_query(req, "scrollback");
	return sb ? (size_t)strtoul(sb, NULL, 10) : 0;
}

/* Replay up to want bytes of past output to a new reader. */
static void replay(struct hub *b, struct reader *r, size_t want)
{
	size_t n;
	XN_AUTOFREE char *past = want ? ring_tail(b, want, &n) : NULL;
	if (past && n)
		reader_write(r, past, n);
}

/* CONNECT /console?ref=<console ref>|uuid=<uuid>&session_id=...&scrollback=N */
static void handle_connect(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	const char *ref = find_console(h, req);
	struct hub *b = ref ? console_hub(h, req, ref) : NULL;
	if (!b)
		return;
	size_t want = scrollback_wanted(req);
	struct reader *r = add_reader(b);
	struct xn_http_tunnel_cb cb = {.data = reader_input, .closed = reader_closed, .ud = r};
	r->t = xn_http_hijack(req, &cb);
	if (!r->t) {
		reader_closed(r);
		return;
	}
	replay(b, r, want);
}

static void ws_message(void *ud, const char *buf, size_t len, bool binary)
{
	(void)binary; /* keystrokes as text or bytes alike */
	reader_input(ud, buf, len);
}

/* GET /console?ref=...&session_id=...[&scrollback=N] with Upgrade:
 * websocket: the serial console (vt100) or the VNC display (rfb). */
static void handle_websocket(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	const char *ref = find_console(h, req);
	if (!ref)
		return;
	if (!xn_ws_requested(req)) {
		deny(req, 400, "GET /console opens a websocket (Upgrade: websocket); "
			       "CONNECT /console is the raw stream\n");
		return;
	}
	if (xn_streq(xn_db_str(h->db, ref, "protocol"), "rfb")) {
		xn_vnc_proxy(h, req, xn_db_str(h->db, ref, "VM"));
		return;
	}
	struct hub *b = console_hub(h, req, ref);
	if (!b)
		return;
	size_t want = scrollback_wanted(req);
	struct reader *r = add_reader(b);
	struct xn_ws_cb cb = {.message = ws_message, .closed = reader_closed, .ud = r};
	r->ws = xn_ws_accept(req, &cb);
	if (!r->ws) {
		reader_closed(r);
		return;
	}
	replay(b, r, want);
}

void xn_consoles_init(xn_host *h)
{
	xn_api_route(h->api, "CONNECT", "/console", handle_connect, h);
	xn_api_route(h->api, "GET", "/console", handle_websocket, h);
}
