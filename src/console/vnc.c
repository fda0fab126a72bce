/* vnc.c: VNC over websocket (vnc.h).
 *
 * One relay per browser: a connection to QEMU's vnc.sock (QEMU accepts
 * several VNC clients) and a websocket. Bytes from QEMU go out as binary
 * messages; messages from the browser are written to QEMU. The socket is
 * connected before the upgrade, so a VM without a display gets a plain
 * 404. Whichever side ends first ends the other; the relay is freed once
 * its pipe handle is closed. */
#include "console/vnc.h"

#include <stdlib.h>
#include <string.h>

#include "api/websocket.h"
#include "util/log.h"

struct relay {
	uv_pipe_t pipe;
	uv_connect_t connect;
	xn_http_req *req;   /* until the upgrade */
	xn_ws *ws;          /* after it; NULL once it is gone */
	bool closing;
};

static void on_pipe_closed(uv_handle_t *h)
{
	free(h->data);
}

/* End the relay: the websocket (if still open) and the pipe. */
static void relay_end(struct relay *r)
{
	if (r->closing)
		return;
	r->closing = true;
	if (r->ws)
		xn_ws_close(r->ws, 1000, "the VNC display closed");
	r->ws = NULL;
	uv_close((uv_handle_t *)&r->pipe, on_pipe_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	buf->base = xn_malloc(65536);
	buf->len = 65536;
}

static void from_qemu(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct relay *r = s->data;
	if (n > 0 && r->ws)
		xn_ws_send(r->ws, buf->base, (size_t)n, true);
	free(buf->base);
	if (n < 0)
		relay_end(r);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
	free(w);
}

static void from_browser(void *ud, const char *buf, size_t len, bool binary)
{
	struct relay *r = ud;
	(void)binary;
	if (r->closing)
		return;
	uv_write_t *w = xn_calloc(1, sizeof(*w));
	w->data = xn_malloc(len);
	memcpy(w->data, buf, len);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(w, (uv_stream_t *)&r->pipe, &b, 1, on_written) < 0) {
		free(w->data);
		free(w);
		relay_end(r);
	}
}

static void browser_gone(void *ud)
{
	struct relay *r = ud;
	r->ws = NULL;
	relay_end(r);
}

static void on_connected(uv_connect_t *c, int status)
{
	struct relay *r = c->data;
	xn_http_req *req = r->req;
	r->req = NULL;
	if (status < 0) {
		static const char msg[] = "the VM has no graphical console now\n";
		xn_http_respond(req, 404, "text/plain", msg, sizeof(msg) - 1);
		r->closing = true;
		uv_close((uv_handle_t *)&r->pipe, on_pipe_closed);
		return;
	}
	struct xn_ws_cb cb = {.message = from_browser, .closed = browser_gone, .ud = r};
	r->ws = xn_ws_accept(req, &cb);
	if (!r->ws) {
		relay_end(r);
		return;
	}
	uv_read_start((uv_stream_t *)&r->pipe, on_alloc, from_qemu);
}

void xn_vnc_proxy(xn_host *h, xn_http_req *req, const char *vm_ref)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/%s/vnc.sock", h->run_dir,
					     xn_db_str(h->db, vm_ref, "uuid"));
	struct relay *r = xn_calloc(1, sizeof(*r));
	r->req = req;
	uv_pipe_init(h->loop, &r->pipe, 0);
	r->pipe.data = r;
	r->connect.data = r;
	uv_pipe_connect(&r->connect, &r->pipe, path, on_connected);
}
