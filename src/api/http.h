/* http.h: the HTTP/1.1 server the API, consoles and (later) the web
 * console are served by, on the daemon's libuv loop.
 *
 * Parsing is http_parser's; this module owns connections, request
 * assembly with size limits, keep-alive, responses, and CONNECT
 * tunnels (the raw byte stream xapi's `CONNECT /console` hands over).
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

/* Requests with bodies over this size are refused with 413. */
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

/* Answer and release the request. */
void xn_http_respond(xn_http_req *r, int status, const char *content_type,
		     const char *body, size_t len);

/* Answer a CORS preflight (OPTIONS) as xapi does, and release it. */
void xn_http_respond_preflight(xn_http_req *r);
/* How long a connection may take to send a request, or stay idle. */
void xn_http_set_idle_timeout(uint64_t ms);

/* CONNECT: answer 200 and turn the connection into a raw tunnel. The
 * request is released; data and closed callbacks follow (closed exactly
 * once, also after xn_http_tunnel_close). */
struct xn_http_tunnel_cb {
	void (*data)(void *ud, const char *buf, size_t len);
	void (*closed)(void *ud);
	void *ud;
};
xn_http_tunnel *xn_http_hijack(xn_http_req *r, const struct xn_http_tunnel_cb *cb);
/* Queue bytes to the peer; -1 if the peer is gone or too far behind. */
int xn_http_tunnel_write(xn_http_tunnel *t, const char *buf, size_t len);
void xn_http_tunnel_close(xn_http_tunnel *t);

#endif
