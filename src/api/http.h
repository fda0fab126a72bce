/* http.h: the HTTP/1.1 server the API, consoles and (later) the web
 * console are served by, on the daemon's libuv loop.
 *
 * Parsing is http_parser's; this module owns connections, request
 * assembly with size limits, keep-alive, responses, streamed bodies
 * both ways (disk images), and CONNECT tunnels (the raw byte stream
 * xapi's `CONNECT /console` hands over).
 * Requests may be answered later (asynchronous handlers): a request
 * stays valid until it is answered, even if its client went away. */
#ifndef XN_HTTP_H
#define XN_HTTP_H

#include <uv.h>

#include "util/err.h"

typedef struct xn_http_server xn_http_server;
typedef struct xn_http_req xn_http_req;
typedef struct xn_http_tunnel xn_http_tunnel;

typedef void (*xn_http_handler)(void *ud, xn_http_req *req);

/* Requests with bodies over this size are refused with 413 (streamed
 * requests, below, have no limit). */
#define XN_HTTP_MAX_BODY (16u << 20)

xn_http_server *xn_http_server_new(uv_loop_t *loop, xn_http_handler fn, void *ud);
/* Listen on a Unix socket (replacing a stale socket file). Callers
 * there count as local (root). */
int xn_http_listen_unix(xn_http_server *s, const char *path, xn_error **err);
/* Listen on "ADDR:PORT" (IPv4 or [IPv6]); with TLS unless tls is NULL
 * (the server does not take ownership of tls). */
struct xn_tls_ctx;
int xn_http_listen_tcp(xn_http_server *s, const char *addr_port, struct xn_tls_ctx *tls,
		       xn_error **err);
/* Stop listening and close every connection. */
void xn_http_server_close(xn_http_server *s);

const char *xn_http_req_method(const xn_http_req *r);
const char *xn_http_req_path(const xn_http_req *r);   /* without the query */
/* A decoded query argument, or NULL. */
const char *xn_http_req_query(const xn_http_req *r, const char *name);
/* A header value (case-insensitive name), or NULL. */
const char *xn_http_req_header(const xn_http_req *r, const char *name);
const char *xn_http_req_body(const xn_http_req *r, size_t *len);
bool xn_http_req_is_local(const xn_http_req *r);
/* False once the client has disconnected (the answer would be dropped). */
bool xn_http_req_connected(const xn_http_req *r);
/* The loop the server runs on. */
uv_loop_t *xn_http_req_loop(const xn_http_req *r);

/* Answer and release the request. */
void xn_http_respond(xn_http_req *r, int status, const char *content_type,
		     const char *body, size_t len);

/* The same with extra headers (each "Name: value\r\n"; NULL: none). */
void xn_http_respond_headers(xn_http_req *r, int status, const char *content_type,
			     const char *extra_headers, const char *body, size_t len);

/* Answer a CORS preflight (OPTIONS) as xapi does, and release it. */
void xn_http_respond_preflight(xn_http_req *r);
/* How long a connection may take to send a request, or stay idle. */
void xn_http_set_idle_timeout(uint64_t ms);

/* ---- streamed requests and responses ---------------------------------
 *
 * Disk images (PUT /import_raw_vdi, GET /export_raw_vdi) are far too
 * large to assemble. For the requests the server's stream filter picks,
 * the handler is called as soon as the head is complete, with no body
 * yet and no size limit. It may answer at once (xn_http_respond; the
 * connection then closes, after discarding what the client still sends,
 * so the client can read the answer), or register callbacks
 * (xn_http_req_stream) and read the body as it arrives
 * (xn_http_body_read), with back-pressure: while reading is off, bytes
 * are neither parsed nor read from the socket. A response body can be
 * produced piece by piece (xn_http_stream_begin/write/end); the drain
 * callback says when the connection's write queue is short again, so a
 * slow client slows the producer down instead of filling memory. */

/* Whether a request is to be streamed (called once its head is parsed). */
typedef bool (*xn_http_stream_filter)(void *ud, const xn_http_req *r);
void xn_http_server_set_stream_filter(xn_http_server *s, xn_http_stream_filter fn);

/* Producers stop queueing response bytes past this many unsent ones. */
#define XN_HTTP_STREAM_HIGH (4u << 20)

struct xn_http_stream_cb {
	/* Body bytes in order (buf is borrowed for the call). */
	void (*data)(void *ud, const char *buf, size_t len);
	/* The whole body has arrived (framing checked by http_parser). */
	void (*end)(void *ud);
	/* Some response bytes were written and fewer than
	 * XN_HTTP_STREAM_HIGH wait: room for more. */
	void (*drain)(void *ud);
	/* The client went away (or broke the framing) before the answer:
	 * nothing more arrives. May be called from inside any xn_http_ call
	 * on the request; the request must still be answered (or ended) to
	 * be released. */
	void (*gone)(void *ud);
	void *ud;
};
/* Register the callbacks of a streamed request (before reading it or
 * answering it piece by piece). */
void xn_http_req_stream(xn_http_req *r, const struct xn_http_stream_cb *cb);
/* The body length the client announced: -1 for chunked encoding. */
int64_t xn_http_req_content_length(const xn_http_req *r);
/* Start (on = true) or pause reading the body. The first start answers
 * "Expect: 100-continue" with a 100 carrying extra_headers (NULL: none;
 * each "Name: value\r\n"). */
void xn_http_body_read(xn_http_req *r, bool on, const char *extra_headers);
/* The status line and headers of a streamed answer (length -1: unknown;
 * the connection closes at the end either way). -1 if the client is gone. */
int xn_http_stream_begin(xn_http_req *r, int status, const char *content_type, int64_t length,
			 const char *extra_headers);
/* Queue body bytes (buf taken over). -1 if the client is gone. */
int xn_http_stream_write(xn_http_req *r, char *buf, size_t len);
/* Response bytes queued but not yet written to the socket. */
size_t xn_http_stream_queued(const xn_http_req *r);
/* End a streamed answer and release the request: complete (close once
 * written), or cut short (close now: the client sees a short body). */
void xn_http_stream_end(xn_http_req *r, bool complete);

/* CONNECT: answer 200 and turn the connection into a raw tunnel. The
 * request is released; data and closed callbacks follow (closed exactly
 * once, also after xn_http_tunnel_close). */
struct xn_http_tunnel_cb {
	void (*data)(void *ud, const char *buf, size_t len);
	void (*closed)(void *ud);
	void *ud;
};
xn_http_tunnel *xn_http_hijack(xn_http_req *r, const struct xn_http_tunnel_cb *cb);
/* The same with another answer than 200 (head: the status line and
 * headers, ending with the blank line), e.g. a websocket's 101. */
xn_http_tunnel *xn_http_upgrade(xn_http_req *r, const char *head,
				const struct xn_http_tunnel_cb *cb);
/* Queue bytes to the peer; -1 if the peer is gone or too far behind. */
int xn_http_tunnel_write(xn_http_tunnel *t, const char *buf, size_t len);
void xn_http_tunnel_close(xn_http_tunnel *t);

#endif
