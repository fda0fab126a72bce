/* qmp.h: an asynchronous QMP client on the daemon's libuv loop.
 *
 * One xn_qmp per QEMU. It connects to the QMP unix socket (retrying while
 * QEMU is still starting), reads the greeting, negotiates capabilities,
 * then sends queued commands one at a time in order and hands each reply
 * to its callback; asynchronous events go to the event callback. Every
 * callback runs on the loop thread. Typed wrappers for the commands the
 * daemon uses are in qmp_commands.h.
 *
 * Callback contract:
 * - ready: called once, when the session is usable (err NULL) or when
 *   connecting failed (timeout, refused greeting...; the session is then
 *   over and no `closed` follows). Not called if xn_qmp_close came first.
 * - closed: called once after a successful ready, when the session ends
 *   (QEMU closed the socket, a protocol error, or xn_qmp_close).
 * - Before ready(err) or closed, every pending command gets its reply
 *   callback with an error. Commands queued on a session that is over
 *   fail the same way, from the loop (never inside xn_qmp_command).
 * The object lives until xn_qmp_close, which every xn_qmp_connect must be
 * paired with (also after closed or ready(err)). */
#ifndef XN_ENGINE_QMP_H
#define XN_ENGINE_QMP_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "util/err.h"

typedef struct xn_qmp xn_qmp;

/* ret: the command's "return" value (borrowed); NULL on error. */
typedef void (*xn_qmp_reply_fn)(void *ud, json_t *ret, const xn_error *err);

struct xn_qmp_callbacks {
	void (*ready)(void *ud, const xn_error *err);
	void (*event)(void *ud, const char *name, json_t *data); /* data borrowed, may be NULL */
	void (*closed)(void *ud);
	void *ud;
};

/* Longest line accepted from QEMU; a longer one ends the session. */
#define XN_QMP_MAX_LINE (64u << 20)

/* Connect to a QMP unix socket, retrying while it does not exist yet or
 * refuses, and finish the handshake, all within timeout_ms. cb is copied.
 * Never NULL; failures are reported through cb->ready. */
xn_qmp *xn_qmp_connect(uv_loop_t *loop, const char *path, uint64_t timeout_ms,
		       const struct xn_qmp_callbacks *cb);

/* Queue a command; args taken over (may be NULL). fn may be NULL. QMP
 * errors become INTERNAL_ERROR ["QMP command 'name' failed: <desc>"]. */
void xn_qmp_command(xn_qmp *q, const char *name, json_t *args, xn_qmp_reply_fn fn, void *ud);

/* Queue `getfd` naming fd as fdname, with the fd attached (SCM_RIGHTS).
 * fd is duplicated at the call; the caller keeps its own. */
void xn_qmp_send_fd(xn_qmp *q, int fd, const char *fdname, xn_qmp_reply_fn fn, void *ud);

/* End the session and release q. Pending replies get an error callback,
 * then `closed` (if ready succeeded and it was not delivered yet), all
 * before this returns; no callback comes after. Safe to call from inside
 * any callback of q. NULL is ignored. */
void xn_qmp_close(xn_qmp *q);

#endif
