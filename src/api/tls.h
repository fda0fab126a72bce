/* tls.h: TLS for the daemon's TCP listener, with OpenSSL driven through
 * memory BIOs so that it runs on the libuv loop: ciphertext read from
 * the socket goes in, plaintext comes out, and whatever OpenSSL wants to
 * send is handed back to be written to the socket.
 *
 * The certificate is DATA/xapi-ssl.pem (key and certificate); on first
 * start a self-signed one is made (EC P-256, ten years), and the
 * administrator may replace the file with their own. */
#ifndef XN_TLS_H
#define XN_TLS_H

#include "util/err.h"

typedef struct xn_tls_ctx xn_tls_ctx;
typedef struct xn_tls xn_tls;

/* Load pem_path, creating a self-signed certificate for cn if missing. */
xn_tls_ctx *xn_tls_ctx_new(const char *pem_path, const char *cn, xn_error **err);
void xn_tls_ctx_free(xn_tls_ctx *ctx);

xn_tls *xn_tls_new(xn_tls_ctx *ctx);
void xn_tls_free(xn_tls *t);

/* Feed ciphertext from the peer; plaintext that became available is
 * appended to plain. Returns -1 on a TLS error (close the connection). */
int xn_tls_feed(xn_tls *t, const char *data, size_t len, xn_buf *plain);
/* Encrypt plaintext to send. */
int xn_tls_write(xn_tls *t, const char *data, size_t len);
/* Ciphertext waiting to go to the peer (moved into out). */
void xn_tls_pending(xn_tls *t, xn_buf *out);

#endif
