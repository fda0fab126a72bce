/* websocket.c: WebSocket connections over HTTP tunnels (websocket.h).
 *
 * The handshake is checked here (RFC 6455 section 4.2); the framing is
 * wslay's event API, which does no I/O of its own: bytes from the tunnel
 * are appended to an input buffer that wslay's recv callback reads, and
 * its send callback queues frames on the tunnel.
 *
 * Lifetime: the xn_ws is freed only from its timer's callback, on the
 * loop, never inside a call that came from the owner or from wslay. When
 * the connection goes (tunnel closed, wslay error, closing handshake
 * done) the timer fires at once and reports `closed` (unless the owner
 * released the ws with xn_ws_close); after xn_ws_close it waits up to
 * CLOSE_WAIT_MS for the peer's close frame, then cuts the connection. */
#include "api/websocket.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "util/log.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CLOSE_WAIT_MS 5000

struct xn_ws {
	xn_http_tunnel *t;        /* NULL once gone */
	wslay_event_context_ptr ctx;
	struct xn_ws_cb cb;
	xn_buf in;                /* received bytes wslay has not read */
	size_t off;
	uv_timer_t timer;
	bool gone;                /* the connection is closed */
	bool released;            /* xn_ws_close was called: no callbacks */
	bool ending;              /* in the timer's callback: ws is being freed */
};

/* ---- the handshake ---------------------------------------------------- */

/* Whether a comma-separated header value lists token (any case). */
static bool header_has_token(const char *value, const char *token)
{
	size_t n = strlen(token);
	for (const char *p = value; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		const char *last = end;
		while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
			last--;
		if ((size_t)(last - p) == n && strncasecmp(p, token, n) == 0)
			return true;
		p = end;
	}
	return false;
}

bool xn_ws_requested(const xn_http_req *req)
{
	return header_has_token(xn_http_req_header(req, "upgrade"), "websocket");
}

int xn_ws_accept_key(const char *key, char out[29])
{
	unsigned char raw[20];
	if (!key || strlen(key) != 24 || strcmp(key + 22, "==") != 0 ||
	    EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
		return -1;
	XN_AUTOFREE char *cat = xn_asprintf("%s" WS_GUID, key);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (!EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return 0;
}

static const char *handshake_error(const xn_http_req *req)
{
	if (strcmp(xn_http_req_method(req), "GET") != 0)
		return "a websocket is opened with GET\n";
	if (!xn_ws_requested(req) ||
	    !header_has_token(xn_http_req_header(req, "connection"), "upgrade"))
		return "expected Connection: Upgrade and Upgrade: websocket\n";
	if (!xn_streq(xn_http_req_header(req, "sec-websocket-version"), "13"))
		return "only websocket version 13 is spoken\n";
	return NULL;
}

/* ---- wslay callbacks -------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *ud)
{
	xn_ws *ws = ud;
	(void)flags;
	size_t have = ws->in.len - ws->off;
	if (have == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = have < len ? have : len;
	memcpy(buf, ws->in.data + ws->off, n);
	ws->off += n;
	return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *ud)
{
	xn_ws *ws = ud;
	(void)flags;
	if (!ws->t || xn_http_tunnel_write(ws->t, (const char *)data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		   void *ud)
{
	xn_ws *ws = ud;
	(void)ctx;
	bool data = arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME;
	if (data && !ws->released && !ws->gone && ws->cb.message)
		ws->cb.message(ws->cb.ud, (const char *)arg->msg, arg->msg_length,
			       arg->opcode == WSLAY_BINARY_FRAME);
}

static const struct wslay_event_callbacks wslay_cbs = {
	.recv_callback = recv_cb,
	.send_callback = send_cb,
	.on_msg_recv_callback = on_msg,
};

/* ---- lifetime --------------------------------------------------------- */

static void free_ws(uv_handle_t *h)
{
	xn_ws *ws = h->data;
	wslay_event_context_free(ws->ctx);
	xn_buf_reset(&ws->in);
	free(ws);
}

/* The timer: the connection is gone (report it and free), or the peer
 * did not answer our close frame in time (cut it, then the same). */
static void on_timer(uv_timer_t *t)
{
	xn_ws *ws = t->data;
	if (ws->t) {
		xn_http_tunnel_close(ws->t);
		ws->t = NULL;
	}
	ws->gone = true;
	ws->ending = true;
	if (!ws->released && ws->cb.closed)
		ws->cb.closed(ws->cb.ud);
	uv_close((uv_handle_t *)&ws->timer, free_ws);
}

/* The connection is over: finish on the loop's next turn. */
static void set_gone(xn_ws *ws)
{
	if (ws->t) {
		xn_http_tunnel_close(ws->t);
		ws->t = NULL;
	}
	ws->gone = true;
	if (!ws->ending)
		uv_timer_start(&ws->timer, on_timer, 0, 0);
}

/* Send what wslay queued; end the connection when neither side has
 * anything left to say (closing handshake done) or on an error. */
static void pump(xn_ws *ws)
{
	if (ws->gone)
		return;
	if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) < 0) {
		set_gone(ws);
		return;
	}
	if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))
		set_gone(ws);
}

static void on_data(void *ud, const char *buf, size_t len)
{
	xn_ws *ws = ud;
	if (ws->gone)
		return;
	xn_buf_append(&ws->in, buf, len);
	int rc = wslay_event_recv(ws->ctx);
	xn_buf_consume(&ws->in, ws->off);
	ws->off = 0;
	if (rc < 0) {
		set_gone(ws);
		return;
	}
	pump(ws);
}

static void on_tunnel_closed(void *ud)
{
	xn_ws *ws = ud;
	ws->t = NULL; /* the tunnel frees itself */
	set_gone(ws);
}

/* ---- public ----------------------------------------------------------- */

static void refuse(xn_http_req *req, const char *why)
{
	xn_http_respond(req, 400, "text/plain", why, strlen(why));
}

xn_ws *xn_ws_accept(xn_http_req *req, const struct xn_ws_cb *cb)
{
	const char *why = handshake_error(req);
	char accept[29];
	if (!why && xn_ws_accept_key(xn_http_req_header(req, "sec-websocket-key"), accept) < 0)
		why = "bad Sec-WebSocket-Key\n";
	if (why) {
		refuse(req, why);
		return NULL;
	}
	bool binary = header_has_token(xn_http_req_header(req, "sec-websocket-protocol"), "binary");
	XN_AUTOFREE char *head = xn_asprintf(
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: %s\r\n%s\r\n",
		accept, binary ? "Sec-WebSocket-Protocol: binary\r\n" : "");
	xn_ws *ws = xn_calloc(1, sizeof(*ws));
	ws->cb = *cb;
	wslay_event_context_server_init(&ws->ctx, &wslay_cbs, ws);
	wslay_event_config_set_max_recv_msg_length(ws->ctx, XN_WS_MAX_MESSAGE);
	uv_timer_init(xn_http_req_loop(req), &ws->timer);
	ws->timer.data = ws;
	struct xn_http_tunnel_cb tcb = {.data = on_data, .closed = on_tunnel_closed, .ud = ws};
	ws->t = xn_http_upgrade(req, head, &tcb);
	if (!ws->t) /* the client left before the answer */
		set_gone(ws);
	return ws;
}

int xn_ws_send(xn_ws *ws, const void *buf, size_t len, bool binary)
{
	if (ws->gone || ws->released)
		return -1;
	struct wslay_event_msg m = {binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, buf, len};
	if (wslay_event_queue_msg(ws->ctx, &m) < 0)
		return -1;
	pump(ws);
	return ws->gone ? -1 : 0;
}

void xn_ws_close(xn_ws *ws, uint16_t code, const char *reason)
{
	if (!ws)
		return;
	ws->released = true;
	if (ws->gone)
		return; /* the timer is already on its way */
	wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
	pump(ws);
	if (!ws->gone)
		uv_timer_start(&ws->timer, on_timer, CLOSE_WAIT_MS, 0);
}
