/* http.c: connections, request assembly and responses (http.h).
 *
 * One connection serves one request at a time: while a request is being
 * handled, reading stops and any pipelined bytes wait in the buffer. A
 * connection that closes while its request is pending leaves the request
 * alive (req->conn = NULL) until the handler answers; the answer is then
 * dropped.
 *
 * Streamed requests are handed over when their head is complete. Their
 * body goes to the handler one parsed piece at a time: on_body records
 * the piece and pauses the parser, and conn_process delivers it after
 * http_parser_execute has returned, so handler callbacks never run
 * inside the parser and may answer, pause or close freely (conn_process
 * does not re-enter itself; its loop looks at the state afresh after
 * each callback). */
#include "api/http.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/tls.h"
#include "util/log.h"

struct conn;

struct xn_http_server {
	uv_loop_t *loop;
	xn_http_handler fn;
	void *ud;
	xn_http_stream_filter stream_filter;
	uv_pipe_t *unix_srv;
	uv_tcp_t *tcp_srv;
	xn_tls_ctx *tls;    /* TLS on TCP connections, unless NULL */
	struct conn *conns; /* doubly linked */
};

struct xn_http_req {
	struct conn *conn;     /* NULL once the client is gone */
	uv_loop_t *loop;
	char *method;
	char *path;
	json_t *query;         /* name -> value */
	json_t *headers;       /* lowercase name -> value */
	xn_buf body;
	bool keep_alive;
	bool local;
	bool dispatched;       /* given to the handler */
	/* streamed requests */
	bool streamed;
	bool reading;          /* the handler wants body bytes now */
	bool body_done, end_reported, continue_sent, resp_started;
	int64_t content_length;
	struct xn_http_stream_cb cb;
};

struct xn_http_tunnel {
	struct conn *conn;
	struct xn_http_tunnel_cb cb;
	bool closed_reported;
};

struct conn {
	xn_http_server *srv;
	union {
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h;
	struct conn *prev, *next;
	http_parser parser;
	xn_buf in;            /* unparsed bytes */
	xn_http_req *cur;     /* request being assembled */
	xn_http_req *pending; /* request handed to the handler */
	xn_buf hfield, hvalue;/* header being assembled */
	bool in_value;
	bool local;
	bool closing;
	xn_http_tunnel *tunnel;
	xn_tls *tls;          /* NULL: plain */
	uv_timer_t *idle;     /* closes connections that send nothing useful */
	bool busy;            /* conn_process is running (further up the stack) */
	const char *piece;    /* a streamed body piece parsed, not delivered */
	size_t piece_len;
	bool no_more;         /* answered for the last time: input is dropped */
	size_t discarded;
};

/* A client gets this long (xn_http_set_idle_timeout; 60 s by default) to
 * send a whole request head and body; an idle keep-alive connection is
 * closed after it too. Slow clients cannot tie connections up for ever. */
static uint64_t idle_ms = 60000;

void xn_http_set_idle_timeout(uint64_t ms)
{
	idle_ms = ms ? ms : 60000;
}

/* An early answer to a streamed upload discards at most this much of
 * the rest, for at most this long, so the client reads the answer
 * instead of a reset. */
#define LINGER_BYTES (64u << 20)
#define LINGER_MS 2000

static void conn_close(struct conn *c);
static void conn_process(struct conn *c);
static void idle_restart(struct conn *c);

/* ---- requests ------------------------------------------------------- */

static void req_free(xn_http_req *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->path);
	json_decref(r->query);
	json_decref(r->headers);
	xn_buf_reset(&r->body);
	free(r);
}

const char *xn_http_req_method(const xn_http_req *r)
{
	return r->method;
}

const char *xn_http_req_path(const xn_http_req *r)
{
	return r->path;
}

const char *xn_http_req_query(const xn_http_req *r, const char *name)
{
	return json_string_value(json_object_get(r->query, name));
}

const char *xn_http_req_header(const xn_http_req *r, const char *name)
{
	XN_AUTOFREE char *lower = xn_strdup(name);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return json_string_value(json_object_get(r->headers, lower));
}

const char *xn_http_req_body(const xn_http_req *r, size_t *len)
{
	*len = r->body.len;
	return r->body.data ? r->body.data : "";
}

bool xn_http_req_is_local(const xn_http_req *r)
{
	return r->local;
}

bool xn_http_req_connected(const xn_http_req *r)
{
	return r->conn != NULL;
}

uv_loop_t *xn_http_req_loop(const xn_http_req *r)
{
	return r->loop;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decoding ('+' is a space in query strings). */
static char *url_decode(const char *s, size_t n)
{
	xn_buf b = {0};
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			char ch = (char)(hexval((unsigned char)s[i + 1]) * 16 +
					 hexval((unsigned char)s[i + 2]));
			xn_buf_append(&b, &ch, 1);
			i += 2;
		} else {
			char ch = s[i] == '+' ? ' ' : s[i];
			xn_buf_append(&b, &ch, 1);
		}
	}
	return xn_buf_steal(&b);
}

static void parse_query(json_t *q, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != '&')
			j++;
		const char *eq = memchr(s + i, '=', j - i);
		XN_AUTOFREE char *k = url_decode(s + i, eq ? (size_t)(eq - (s + i)) : j - i);
		XN_AUTOFREE char *v = eq ? url_decode(eq + 1, (size_t)(s + j - eq - 1)) : xn_strdup("");
		if (*k)
			json_object_set_new(q, k, json_string(v));
		i = j + 1;
	}
}

/* ---- parser callbacks ----------------------------------------------- */

static int on_begin(http_parser *p)
{
	struct conn *c = p->data;
	req_free(c->cur);
	c->cur = xn_calloc(1, sizeof(xn_http_req));
	c->cur->query = json_object();
	c->cur->headers = json_object();
	c->cur->local = c->local;
	c->cur->conn = c;
	c->cur->loop = c->srv->loop;
	xn_buf_reset(&c->hfield);
	xn_buf_reset(&c->hvalue);
	c->in_value = false;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (len > 16384)
		return -1;
	if (!c->cur->path) {
		c->cur->path = xn_strndup(at, len);
	} else {
		XN_AUTOFREE char *old = c->cur->path;
		c->cur->path = xn_asprintf("%s%.*s", old, (int)len, at);
	}
	return 0;
}

static void flush_header(struct conn *c)
{
	if (!c->hfield.len)
		return;
	for (size_t i = 0; i < c->hfield.len; i++)
		c->hfield.data[i] = (char)tolower((unsigned char)c->hfield.data[i]);
	json_object_set_new(c->cur->headers, c->hfield.data,
			    json_stringn(c->hvalue.data ? c->hvalue.data : "", c->hvalue.len));
	xn_buf_reset(&c->hfield);
	xn_buf_reset(&c->hvalue);
}

static int on_hfield(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (c->in_value) {
		flush_header(c);
		c->in_value = false;
	}
	if (c->hfield.len + len > 1024 || json_object_size(c->cur->headers) > 100)
		return -1;
	xn_buf_append(&c->hfield, at, len);
	return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	c->in_value = true;
	if (c->hvalue.len + len > 16384)
		return -1;
	xn_buf_append(&c->hvalue, at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;
	flush_header(c);
	xn_http_req *r = c->cur;
	r->method = xn_strdup(http_method_str((enum http_method)p->method));
	const char *url = r->path ? r->path : "/";
	struct http_parser_url u;
	http_parser_url_init(&u);
	/* CONNECT normally names host:port; xapi's CONNECT /console names a path. */
	bool is_connect = p->method == HTTP_CONNECT && url[0] != '/';
	if (http_parser_parse_url(url, strlen(url), is_connect, &u) == 0 &&
	    (u.field_set & (1 << UF_PATH))) {
		if (u.field_set & (1 << UF_QUERY))
			parse_query(r->query, url + u.field_data[UF_QUERY].off,
				    u.field_data[UF_QUERY].len);
		char *path = url_decode(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
		free(r->path);
		r->path = path;
	} else {
		/* Not a path (e.g. CONNECT host:port): keep the raw target. */
		if (!r->path)
			r->path = xn_strdup("/");
	}
	bool chunked = p->flags & F_CHUNKED;
	r->content_length = chunked ? -1 : p->content_length == ULLONG_MAX ? 0
					 : (int64_t)p->content_length;
	if (c->srv->stream_filter && c->srv->stream_filter(c->srv->ud, r)) {
		r->streamed = true;
		c->pending = r;
		c->cur = NULL;
		http_parser_pause(p, 1); /* conn_process hands it over */
		return 0;
	}
	if (p->content_length != ULLONG_MAX && p->content_length > XN_HTTP_MAX_BODY)
		return -1;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (!c->cur) { /* streamed: delivered once the parser has returned */
		c->piece = at;
		c->piece_len = len;
		http_parser_pause(p, 1);
		return 0;
	}
	if (c->cur->body.len + len > XN_HTTP_MAX_BODY)
		return -1;
	xn_buf_append(&c->cur->body, at, len);
	return 0;
}

static int on_complete(http_parser *p)
{
	struct conn *c = p->data;
	if (c->cur) {
		c->pending = c->cur;
		c->cur = NULL;
	} else {
		c->pending->body_done = true; /* streamed */
	}
	c->pending->keep_alive = http_should_keep_alive(p);
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_begin,
	.on_url = on_url,
	.on_header_field = on_hfield,
	.on_header_value = on_hvalue,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

/* ---- writing -------------------------------------------------------- */

enum after_write { KEEP_OPEN, CLOSE, LINGER };

struct wreq {
	uv_write_t w;
	char *data;
	struct conn *c;
	enum after_write after;
};

static void conn_linger(struct conn *c);

static void on_written(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->c;
	enum after_write after = wr->after;
	free(wr->data);
	free(wr);
	if (after == CLOSE || (status < 0 && status != UV_ECANCELED))
		conn_close(c); /* done, or the peer is gone (EPIPE, ECONNRESET) */
	else if (after == LINGER)
		conn_linger(c);
	if (status < 0 || c->closing)
		return;
	/* a streamed answer: the client is reading, so room for more */
	xn_http_req *r = c->pending;
	if (r && r->resp_started) {
		idle_restart(c);
		if (r->cb.drain && uv_stream_get_write_queue_size(&c->h.stream) < XN_HTTP_STREAM_HIGH)
			r->cb.drain(r->cb.ud);
	}
}

static int raw_write(struct conn *c, char *data, size_t len, enum after_write after);

/* Plaintext out: through TLS when the connection has it. */
static int conn_write(struct conn *c, char *data, size_t len, enum after_write after)
{
	if (!c->tls || c->closing)
		return raw_write(c, data, len, after);
	int rc = xn_tls_write(c->tls, data, len);
	free(data);
	xn_buf out = {0};
	xn_tls_pending(c->tls, &out);
	if (rc < 0) {
		xn_buf_reset(&out);
		conn_close(c);
		return -1;
	}
	size_t n = out.len;
	return raw_write(c, out.data ? xn_buf_steal(&out) : xn_strdup(""), n, after);
}

static int raw_write(struct conn *c, char *data, size_t len, enum after_write after)
{
	if (c->closing) {
		free(data);
		return -1;
	}
	struct wreq *wr = xn_calloc(1, sizeof(*wr));
	wr->data = data;
	wr->c = c;
	wr->after = after;
	uv_buf_t b = uv_buf_init(data, (unsigned)len);
	if (uv_write(&wr->w, &c->h.stream, &b, 1, on_written) < 0) {
		free(data);
		free(wr);
		conn_close(c);
		return -1;
	}
	return 0;
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	default: return "Error";
	}
}

static void send_simple(struct conn *c, int status, bool close_after)
{
	char *body = xn_asprintf("<html><body><h1>HTTP %d %s</h1></body></html>", status,
				 status_text(status));
	char *resp = xn_asprintf("HTTP/1.1 %d %s\r\nContent-Type: text/html\r\n"
				 "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
				 status, status_text(status), strlen(body),
				 close_after ? "close" : "keep-alive", body);
	free(body);
	c->no_more = c->no_more || close_after;
	conn_write(c, resp, strlen(resp), close_after ? CLOSE : KEEP_OPEN);
}

/* After an answer: keep the connection, close it, or for an upload
 * answered before its end, linger. */
static enum after_write after_answer(const xn_http_req *r)
{
	if (r->keep_alive)
		return KEEP_OPEN;
	return r->streamed && !r->body_done ? LINGER : CLOSE;
}

void xn_http_respond(xn_http_req *r, int status, const char *content_type, const char *body,
		     size_t len)
{
	xn_http_respond_headers(r, status, content_type, NULL, body, len);
}

void xn_http_respond_headers(xn_http_req *r, int status, const char *content_type,
			     const char *extra_headers, const char *body, size_t len)
{
	struct conn *c = r->conn;
	if (c) {
		xn_buf b = {0};
		xn_buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
				  "Access-Control-Allow-Origin: *\r\n%sConnection: %s\r\n\r\n",
			      status, status_text(status), content_type, len,
			      extra_headers ? extra_headers : "", r->keep_alive ? "keep-alive" : "close");
		xn_buf_append(&b, body, len);
		size_t n = b.len;
		c->pending = NULL;
		bool keep = r->keep_alive;
		c->no_more = !keep;
		conn_write(c, xn_buf_steal(&b), n, after_answer(r));
		if (keep && !c->closing) {
			idle_restart(c);
			http_parser_pause(&c->parser, 0);
			conn_process(c);
		}
	}
	req_free(r);
}

void xn_http_respond_preflight(xn_http_req *r)
{
	struct conn *c = r->conn;
	if (c) {
		char *resp = xn_asprintf(
			"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n"
			"Access-Control-Allow-Methods: POST, OPTIONS\r\n"
			"Access-Control-Allow-Headers: content-type\r\n"
			"Content-Length: 0\r\nConnection: %s\r\n\r\n",
			r->keep_alive ? "keep-alive" : "close");
		bool keep = r->keep_alive;
		c->pending = NULL;
		c->no_more = !keep;
		conn_write(c, resp, strlen(resp), keep ? KEEP_OPEN : CLOSE);
		if (keep && !c->closing) {
			idle_restart(c);
			http_parser_pause(&c->parser, 0);
			conn_process(c);
		}
	}
	req_free(r);
}

/* ---- reading -------------------------------------------------------- */

/* Reads are 64 KiB, 256 KiB while a streamed body flows (fewer system
 * calls and parser rounds per GiB). */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;
	(void)hint;
	size_t n = c->pending && c->pending->streamed ? 262144 : 65536;
	buf->base = xn_malloc(n);
	buf->len = n;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_plain(struct conn *c, ssize_t n, const uv_buf_t *buf);

static bool body_wanted(const xn_http_req *r)
{
	return r->streamed && r->reading && !r->body_done;
}

/* Parse what is buffered; hand requests (and streamed body pieces) to
 * the handler. Most calls are answered before the handler returns;
 * reading stops only for those answered later (saves two epoll_ctl
 * calls per request). */
static void conn_process(struct conn *c)
{
	if (c->busy)
		return; /* the loop below, further up the stack, carries on */
	c->busy = true;
	while (!c->closing && !c->tunnel && !c->no_more) {
		xn_http_req *r = c->pending;
		if (r && !r->dispatched) {
			r->dispatched = true;
			c->srv->fn(c->srv->ud, r);
			continue;
		}
		if (r && r->body_done && r->streamed && !r->end_reported) {
			r->end_reported = true;
			if (r->cb.end)
				r->cb.end(r->cb.ud);
			continue;
		}
		if (r && !body_wanted(r)) {
			uv_read_stop(&c->h.stream); /* with the handler; pipelined bytes wait */
			break;
		}
		if (c->in.len == 0) {
			/* nothing buffered (a zero-length execute means EOF to the parser) */
			uv_read_start(&c->h.stream, on_alloc, on_read);
			break;
		}
		http_parser_pause(&c->parser, 0);
		size_t used = http_parser_execute(&c->parser, &settings, c->in.data, c->in.len);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e != HPE_OK && e != HPE_PAUSED) {
			xn_debug("http: bad request: %s", http_errno_name(e));
			uv_read_stop(&c->h.stream);
			send_simple(c, e == HPE_CB_headers_complete || e == HPE_CB_body ? 413 : 400, true);
			break;
		}
		if (c->piece_len && r) {
			size_t n = c->piece_len;
			c->piece_len = 0;
			idle_restart(c);
			if (r->cb.data)
				r->cb.data(r->cb.ud, c->piece, n);
		}
		xn_buf_consume(&c->in, used);
	}
	c->busy = false;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (n < 0) {
		free(buf->base);
		conn_close(c);
		return;
	}
	if (n == 0) { /* EAGAIN: nothing read */
		free(buf->base);
		return;
	}
	if (c->no_more) {
		free(buf->base);
		c->discarded += (size_t)n;
		if (c->discarded > LINGER_BYTES)
			conn_close(c);
		return;
	}
	if (c->tls) {
		/* Decrypt; answer the handshake; continue with plaintext. */
		xn_buf plain = {0}, out = {0};
		int rc = xn_tls_feed(c->tls, buf->base, (size_t)n, &plain);
		free(buf->base);
		xn_tls_pending(c->tls, &out);
		if (out.len) {
			size_t len = out.len;
			raw_write(c, xn_buf_steal(&out), len, KEEP_OPEN);
		}
		if (rc < 0) {
			xn_buf_reset(&plain);
			conn_close(c);
			return;
		}
		uv_buf_t pb = uv_buf_init(plain.data ? plain.data : xn_strdup(""), (unsigned)plain.len);
		if (plain.len == 0) {
			free(pb.base);
			return;
		}
		plain.data = NULL;
		on_plain(c, (ssize_t)pb.len, &pb);
		return;
	}
	on_plain(c, n, buf);
}

/* Plaintext in (buf->base is taken over). */
static void on_plain(struct conn *c, ssize_t n, const uv_buf_t *buf)
{
	if (c->tunnel) {
		if (n > 0 && c->tunnel->cb.data)
			c->tunnel->cb.data(c->tunnel->cb.ud, buf->base, (size_t)n);
		free(buf->base);
		return;
	}
	if (c->in.len == 0 && (size_t)n < buf->len) {
		/* nothing buffered: the read buffer becomes the buffer (a copy
		 * less per read, which counts when disk images stream) */
		free(c->in.data);
		c->in = (xn_buf){.data = buf->base, .len = (size_t)n, .cap = buf->len};
		c->in.data[n] = '\0';
	} else {
		xn_buf_append(&c->in, buf->base, (size_t)n);
		free(buf->base);
	}
	if (c->in.len > XN_HTTP_MAX_BODY + 65536) {
		send_simple(c, 413, true);
		return;
	}
	conn_process(c);
}

/* A streamed request whose client stopped sending or reading. */
static bool stalled(struct conn *c, const xn_http_req *r)
{
	return body_wanted(r) ||
	       (r->resp_started && uv_stream_get_write_queue_size(&c->h.stream) > 0);
}

static void on_idle(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->no_more || (!c->pending && !c->tunnel) || (c->pending && stalled(c, c->pending)))
		conn_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	free(req);
}

/* The answer to an upload went out before the upload ended: stop
 * sending, read and drop the rest for a while, then close. Closing at
 * once would make the kernel reset the connection, and the client could
 * lose the answer. */
static void conn_linger(struct conn *c)
{
	if (c->closing)
		return;
	uv_shutdown_t *req = xn_calloc(1, sizeof(*req));
	if (uv_shutdown(req, &c->h.stream, on_shutdown) < 0) {
		free(req);
		conn_close(c);
		return;
	}
	uv_timer_start(c->idle, on_idle, LINGER_MS, 0);
	uv_read_start(&c->h.stream, on_alloc, on_read);
}

static void idle_restart(struct conn *c)
{
	if (c->idle && !c->closing)
		uv_timer_start(c->idle, on_idle, idle_ms, 0);
}

static void on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	xn_buf_reset(&c->in);
	xn_buf_reset(&c->hfield);
	xn_buf_reset(&c->hvalue);
	req_free(c->cur);
	xn_tls_free(c->tls);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->pending) {
		xn_http_req *r = c->pending;
		r->conn = NULL; /* the handler still owns it */
		c->pending = NULL;
		if (!r->dispatched)
			req_free(r);
		else if (r->streamed && r->cb.gone)
			r->cb.gone(r->cb.ud);
	}
	if (c->tunnel) {
		xn_http_tunnel *t = c->tunnel;
		t->conn = NULL;
		c->tunnel = NULL;
		if (!t->closed_reported) {
			t->closed_reported = true;
			if (t->cb.closed)
				t->cb.closed(t->cb.ud);
		}
		free(t);
	}
	if (c->idle) {
		uv_close((uv_handle_t *)c->idle, (uv_close_cb)free);
		c->idle = NULL;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->h.stream, on_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
	xn_http_server *s = server->data;
	if (status < 0)
		return;
	struct conn *c = xn_calloc(1, sizeof(*c));
	c->srv = s;
	c->local = server == (uv_stream_t *)s->unix_srv;
	if (c->local)
		uv_pipe_init(s->loop, &c->h.pipe, 0);
	else
		uv_tcp_init(s->loop, &c->h.tcp);
	c->h.stream.data = c;
	if (uv_accept(server, &c->h.stream) < 0) {
		uv_close((uv_handle_t *)&c->h.stream, (uv_close_cb)free);
		return;
	}
	if (!c->local) {
		uv_tcp_nodelay(&c->h.tcp, 1);
		if (s->tls)
			c->tls = xn_tls_new(s->tls);
	}
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	c->idle = xn_calloc(1, sizeof(uv_timer_t));
	uv_timer_init(s->loop, c->idle);
	c->idle->data = c;
	idle_restart(c);
	uv_read_start(&c->h.stream, on_alloc, on_read);
}

/* ---- streamed requests and responses ------------------------------- */

void xn_http_server_set_stream_filter(xn_http_server *s, xn_http_stream_filter fn)
{
	s->stream_filter = fn;
}

void xn_http_req_stream(xn_http_req *r, const struct xn_http_stream_cb *cb)
{
	r->cb = *cb;
}

int64_t xn_http_req_content_length(const xn_http_req *r)
{
	return r->content_length;
}

void xn_http_body_read(xn_http_req *r, bool on, const char *extra_headers)
{
	struct conn *c = r->conn;
	r->reading = on;
	if (!c || !on)
		return; /* conn_process stops reading when it next looks */
	const char *expect = xn_http_req_header(r, "expect");
	if (!r->continue_sent && !r->body_done && expect && strcasecmp(expect, "100-continue") == 0) {
		r->continue_sent = true;
		char *head = xn_asprintf("HTTP/1.1 100 Continue\r\n%s\r\n",
					 extra_headers ? extra_headers : "");
		conn_write(c, head, strlen(head), KEEP_OPEN);
	}
	idle_restart(c);
	conn_process(c);
}

int xn_http_stream_begin(xn_http_req *r, int status, const char *content_type, int64_t length,
			 const char *extra_headers)
{
	struct conn *c = r->conn;
	if (!c)
		return -1;
	xn_buf b = {0};
	xn_buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, status_text(status),
		      content_type);
	if (length >= 0)
		xn_buf_printf(&b, "Content-Length: %lld\r\n", (long long)length);
	xn_buf_printf(&b, "%sConnection: close\r\n\r\n", extra_headers ? extra_headers : "");
	r->resp_started = true;
	idle_restart(c);
	size_t n = b.len;
	return conn_write(c, xn_buf_steal(&b), n, KEEP_OPEN);
}

int xn_http_stream_write(xn_http_req *r, char *buf, size_t len)
{
	if (!r->conn) {
		free(buf);
		return -1;
	}
	return conn_write(r->conn, buf, len, KEEP_OPEN);
}

size_t xn_http_stream_queued(const xn_http_req *r)
{
	return r->conn ? uv_stream_get_write_queue_size(&r->conn->h.stream) : 0;
}

void xn_http_stream_end(xn_http_req *r, bool complete)
{
	struct conn *c = r->conn;
	if (c) {
		c->pending = NULL;
		c->no_more = true;
		if (complete) /* an empty write, to close once the rest is out */
			raw_write(c, xn_strdup(""), 0, CLOSE);
		else
			conn_close(c);
	}
	req_free(r);
}

/* ---- tunnels -------------------------------------------------------- */

xn_http_tunnel *xn_http_hijack(xn_http_req *r, const struct xn_http_tunnel_cb *cb)
{
	return xn_http_upgrade(r, "HTTP/1.1 200 OK\r\n\r\n", cb);
}

xn_http_tunnel *xn_http_upgrade(xn_http_req *r, const char *head,
				const struct xn_http_tunnel_cb *cb)
{
	struct conn *c = r->conn;
	if (!c) {
		req_free(r);
		return NULL;
	}
	c->pending = NULL;
	req_free(r);
	xn_http_tunnel *t = xn_calloc(1, sizeof(*t));
	t->conn = c;
	t->cb = *cb;
	c->tunnel = t;
	char *ok = xn_strdup(head);
	conn_write(c, ok, strlen(ok), KEEP_OPEN);
	/* Bytes that arrived after the request head belong to the tunnel. */
	if (c->in.len && t->cb.data) {
		xn_buf rest = c->in;
		c->in = (xn_buf){0};
		t->cb.data(t->cb.ud, rest.data, rest.len);
		xn_buf_reset(&rest);
	}
	if (c->tunnel == t)
		uv_read_start(&c->h.stream, on_alloc, on_read);
	return t;
}

int xn_http_tunnel_write(xn_http_tunnel *t, const char *buf, size_t len)
{
	if (!t || !t->conn)
		return -1;
	/* A reader that cannot keep up is dropped, not buffered forever. */
	if (uv_stream_get_write_queue_size(&t->conn->h.stream) > (4u << 20)) {
		conn_close(t->conn);
		return -1;
	}
	char *copy = xn_malloc(len);
	memcpy(copy, buf, len);
	return conn_write(t->conn, copy, len, KEEP_OPEN);
}

void xn_http_tunnel_close(xn_http_tunnel *t)
{
	if (!t)
		return;
	if (t->conn) {
		t->closed_reported = true; /* the owner asked; no callback */
		conn_close(t->conn);
	}
}

/* ---- servers -------------------------------------------------------- */

xn_http_server *xn_http_server_new(uv_loop_t *loop, xn_http_handler fn, void *ud)
{
	xn_http_server *s = xn_calloc(1, sizeof(*s));
	s->loop = loop;
	s->fn = fn;
	s->ud = ud;
	return s;
}

int xn_http_listen_unix(xn_http_server *s, const char *path, xn_error **err)
{
	unlink(path);
	s->unix_srv = xn_calloc(1, sizeof(uv_pipe_t));
	uv_pipe_init(s->loop, s->unix_srv, 0);
	s->unix_srv->data = s;
	int rc = uv_pipe_bind(s->unix_srv, path);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)s->unix_srv, 128, on_connection);
	if (rc < 0)
		return xn_fail_internal(err, "cannot listen on '%s': %s", path, uv_strerror(rc));
	chmod(path, 0600);
	return 0;
}

int xn_http_listen_tcp(xn_http_server *s, const char *addr_port, xn_tls_ctx *tls,
			xn_error **err)
{
	s->tls = tls;
	XN_AUTOFREE char *host = xn_strdup(addr_port);
	char *colon = strrchr(host, ':');
	if (!colon)
		return xn_fail_internal(err, "cannot listen on '%s': expected ADDR:PORT", addr_port);
	*colon = '\0';
	int port = atoi(colon + 1);
	char *h = host;
	if (*h == '[') {
		h++;
		h[strlen(h) - 1] = '\0';
	}
	struct sockaddr_storage sa;
	if (uv_ip4_addr(h, port, (struct sockaddr_in *)&sa) != 0 &&
	    uv_ip6_addr(h, port, (struct sockaddr_in6 *)&sa) != 0)
		return xn_fail_internal(err, "cannot listen on '%s': bad address", addr_port);
	s->tcp_srv = xn_calloc(1, sizeof(uv_tcp_t));
	uv_tcp_init(s->loop, s->tcp_srv);
	s->tcp_srv->data = s;
	int rc = uv_tcp_bind(s->tcp_srv, (struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)s->tcp_srv, 128, on_connection);
	if (rc < 0)
		return xn_fail_internal(err, "cannot listen on '%s': %s", addr_port, uv_strerror(rc));
	return 0;
}

void xn_http_server_close(xn_http_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_close(s->conns);
	if (s->unix_srv)
		uv_close((uv_handle_t *)s->unix_srv, (uv_close_cb)free);
	if (s->tcp_srv)
		uv_close((uv_handle_t *)s->tcp_srv, (uv_close_cb)free);
	free(s);
}
