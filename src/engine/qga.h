/* qga.h: a client of the QEMU guest agent on the daemon's libuv loop.
 *
 * One xn_qga per VM, on the unix socket QEMU serves for the guest's
 * virtio-serial port org.qemu.guest_agent.0 (qemu_argv.h). The agent is
 * a program inside the guest, so nothing about it can be relied upon:
 * it may not be installed, not started yet, stopped, restarted, slow,
 * or answer with garbage. The client therefore
 *
 * - connects lazily, when a command is queued, and again after the
 *   socket closed (QEMU going away, or after a daemon restart);
 * - runs the guest-sync-delimited handshake (a 0xFF byte to reset the
 *   agent's parser, then a random id that the agent echoes after a 0xFF
 *   of its own) before the first command and after any command that got
 *   no answer, and drops every byte before that answer, so replies left
 *   over from earlier requests are never taken for new ones;
 * - sends one command at a time with an id and its own timeout; a
 *   handshake that times out fails every queued command at once, so a
 *   guest without an agent costs one timeout per batch, not one each;
 * - never blocks: every step is a callback on the loop.
 *
 * Callbacks run on the loop thread, never inside xn_qga_command. */
#ifndef XN_ENGINE_QGA_H
#define XN_ENGINE_QGA_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "util/err.h"

typedef struct xn_qga xn_qga;

/* The answer to a command. Exactly one of:
 * - ret: the agent's "return" value (borrowed for the call);
 * - agent_err: the agent answered with an error object (borrowed; its
 *   "desc" says why), so the agent is there but refused;
 * - err: no answer (no agent, a timeout, the socket closed). */
typedef void (*xn_qga_reply_fn)(void *ud, json_t *ret, json_t *agent_err, const xn_error *err);

/* Command flags. */
enum {
	/* The agent answers only failures (guest-shutdown): no answer
	 * within the timeout, or the socket closing once it was sent (QEMU
	 * exiting), is success (ret is then JSON null). */
	XN_QGA_NO_SUCCESS_REPLY = 1,
};

/* Longest line accepted from the agent; a longer one is dropped and the
 * session resynchronised. */
#define XN_QGA_MAX_LINE (1u << 20)

/* A client for the agent behind the unix socket at path. Connects when
 * the first command is queued. Never NULL. */
xn_qga *xn_qga_new(uv_loop_t *loop, const char *path);

/* Queue command name (args taken over, may be NULL), answered through fn
 * within timeout_ms of being sent (the handshake before it has the same
 * timeout). fn may be NULL. */
void xn_qga_command(xn_qga *g, const char *name, json_t *args, unsigned flags,
		    uint64_t timeout_ms, xn_qga_reply_fn fn, void *ud);

/* Whether the socket is connected and the last handshake succeeded. */
bool xn_qga_synced(const xn_qga *g);

/* Fail every pending command (callbacks run before this returns), close
 * the socket and release g. No callback comes after. Safe to call from a
 * callback of g. NULL is ignored. */
void xn_qga_close(xn_qga *g);

#endif
