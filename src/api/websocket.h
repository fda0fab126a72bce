/* websocket.h: WebSocket (RFC 6455) connections on the HTTP server, for
 * the web console's terminals (serial console, VNC).
 *
 * A GET carrying the upgrade headers is answered 101 and its connection
 * becomes a websocket. The framing (masking, fragments, ping/pong, the
 * closing handshake, UTF-8 checks of text messages) is wslay's; this
 * module feeds it the tunnel's bytes and hands whole messages over.
 * Everything runs on the loop; nothing blocks. */
#ifndef XN_WEBSOCKET_H
#define XN_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"

typedef struct xn_ws xn_ws;

struct xn_ws_cb {
	/* A whole message (buf borrowed for the call). */
	void (*message)(void *ud, const char *buf, size_t len, bool binary);
	/* The connection is gone (peer closed, error, or protocol error).
	 * Called exactly once, unless xn_ws_close was called first. The
	 * xn_ws must not be used afterwards. */
	void (*closed)(void *ud);
	void *ud;
};

/* Messages from browsers larger than this close the connection (1009). */
#define XN_WS_MAX_MESSAGE (1u << 20)

/* Whether the request asks for a websocket (Upgrade: websocket). */
bool xn_ws_requested(const xn_http_req *req);

/* Check the handshake, answer 101 (with the subprotocol "binary" when
 * the client offers it, as noVNC may) and take the connection over. The
 * request is released either way. On a bad handshake it is answered 400
 * and NULL returned. */
xn_ws *xn_ws_accept(xn_http_req *req, const struct xn_ws_cb *cb);

/* Queue one message. -1 if the connection is closing or gone. */
int xn_ws_send(xn_ws *ws, const void *buf, size_t len, bool binary);

/* Start the closing handshake (code and reason as in RFC 6455) and
 * release ws: no callback follows. */
void xn_ws_close(xn_ws *ws, uint16_t code, const char *reason);

/* The Sec-WebSocket-Accept value for a client's key (28 characters and
 * a NUL into out). -1 if the key is not 16 bytes in base64. */
int xn_ws_accept_key(const char *key, char out[29]);

#endif
