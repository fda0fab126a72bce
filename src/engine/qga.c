/* qga.c: the guest-agent client (qga.h).
 *
 * One socket, one timer, a FIFO of commands of which the head is the
 * only one ever on the wire. The session moves between
 *
 *   CLOSED --connect--> UNSYNCED --0xFF + guest-sync-delimited--> SYNCING
 *      ^                   ^                                        |
 *      |                   +---- a command without an answer -------+
 *      +---- EOF / error                                            v
 *                                            SYNCED <--{"return": id}
 *
 * and a command leaves only in SYNCED. While SYNCING, every byte up to
 * the agent's 0xFF is dropped and the line after it must echo the
 * handshake's id, else the next 0xFF is awaited: an agent that starts
 * late answers queued handshakes in order, and only the newest counts.
 *
 * Ordering note: a callback may queue commands or close the client. The
 * head is detached before its callback runs, every loop re-checks
 * `released` after a callback, and memory goes only from the handles'
 * close callbacks, which libuv runs once the stack has unwound. */
#include "engine/qga.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/uuid.h"

enum qga_state { S_CLOSED, S_CONNECTING, S_UNSYNCED, S_SYNCING, S_SYNCED };

/* Handshakes left unanswered in a row before the socket is closed and
 * opened again: QEMU holds what it cannot pass to a guest whose agent
 * has not opened its port, and drops it with the connection, so a guest
 * without an agent never makes it hold more than a few of them. */
#define SILENT_SYNCS_MAX 4

#define READ_CHUNK 65536

typedef struct qga_cmd {
	struct qga_cmd *next;
	char *name;
	json_t *args;
	unsigned flags;
	uint64_t timeout_ms;
	json_int_t id;
	xn_qga_reply_fn fn;
	void *ud;
} qga_cmd;

struct xn_qga {
	uv_loop_t *loop;
	char *path;
	enum qga_state state;
	bool inflight;        /* the head was sent and awaits its answer */
	bool after_ff;        /* SYNCING: the agent's 0xFF has been seen */
	bool released;
	int silent_syncs;     /* handshakes unanswered in a row */
	int open_handles;
	uv_pipe_t pipe;
	uv_connect_t connect;
	uv_timer_t timer;
	xn_buf in;
	json_int_t sync_id, next_id;
	qga_cmd *head, *tail;
};

static void kick(xn_qga *g);

/* ---- the queue ---- */

static qga_cmd *pop(xn_qga *g)
{
	qga_cmd *c = g->head;
	if (c) {
		g->head = c->next;
		if (!g->head)
			g->tail = NULL;
	}
	g->inflight = false;
	return c;
}

static void cmd_free(qga_cmd *c)
{
	free(c->name);
	json_decref(c->args);
	free(c);
}

/* Answer c (detached) and free it. */
static void answer(qga_cmd *c, json_t *ret, json_t *agent_err, const xn_error *err)
{
	if (c->fn)
		c->fn(c->ud, ret, agent_err, err);
	cmd_free(c);
}

static void fail_cmd(qga_cmd *c, const char *why)
{
	XN_AUTOERR xn_error *err = NULL;
	xn_fail_internal(&err, "guest agent command '%s': %s", c->name, why);
	answer(c, NULL, NULL, err);
}

/* Fail every command, including those their callbacks queue meanwhile.
 * A command the agent answers only on failure that was sent has not
 * failed: after guest-shutdown the socket closes because QEMU exits. */
static void fail_all(xn_qga *g, const char *why)
{
	uv_timer_stop(&g->timer);
	bool sent = g->inflight;
	qga_cmd *c;
	while ((c = pop(g))) {
		if (sent && (c->flags & XN_QGA_NO_SUCCESS_REPLY))
			answer(c, json_null(), NULL, NULL);
		else
			fail_cmd(c, why);
		sent = false;
	}
}

/* ---- the socket ---- */

static void on_handle_closed(uv_handle_t *h)
{
	xn_qga *g = h->data;
	if (--g->open_handles == 0 && g->released) {
		xn_buf_reset(&g->in);
		free(g->path);
		free(g);
	}
}

/* Close the socket (a pending connect is cancelled by libuv). */
static void close_pipe(xn_qga *g)
{
	if (g->state != S_CLOSED)
		uv_close((uv_handle_t *)&g->pipe, on_handle_closed);
	g->state = S_CLOSED;
}

static void drop_connection(xn_qga *g, const char *why)
{
	if (g->state == S_CLOSED)
		return;
	xn_debug("qga: '%s': %s", g->path, why);
	close_pipe(g);
	xn_buf_reset(&g->in);
	fail_all(g, why);
}

static void on_write(uv_write_t *req, int status)
{
	xn_qga *g = req->data;
	free(req);
	if (status < 0 && status != UV_ECANCELED && !g->released)
		drop_connection(g, uv_strerror(status));
}

static void send_line(xn_qga *g, const char *prefix, json_t *msg)
{
	XN_AUTOFREE char *text = json_dumps(msg, JSON_COMPACT);
	size_t plen = strlen(prefix), tlen = strlen(text);
	uv_write_t *req = xn_malloc(sizeof(*req) + plen + tlen + 1);
	char *data = (char *)(req + 1);
	memcpy(data, prefix, plen);
	memcpy(data + plen, text, tlen);
	data[plen + tlen] = '\n';
	req->data = g;
	uv_buf_t buf = uv_buf_init(data, (unsigned int)(plen + tlen + 1));
	int r = uv_write(req, (uv_stream_t *)&g->pipe, &buf, 1, on_write);
	if (r < 0) {
		free(req);
		drop_connection(g, uv_strerror(r));
	}
}

/* ---- timeouts ---- */

static void on_timer(uv_timer_t *t)
{
	xn_qga *g = t->data;
	if (g->state == S_SYNCING) {
		g->state = S_UNSYNCED;
		if (++g->silent_syncs >= SILENT_SYNCS_MAX) {
			g->silent_syncs = 0;
			drop_connection(g, "the guest agent does not answer");
		} else {
			fail_all(g, "the guest agent does not answer");
		}
		return;
	}
	if (g->state != S_SYNCED || !g->inflight)
		return;
	/* An answer may still come; the next command resynchronises first. */
	g->state = S_UNSYNCED;
	qga_cmd *c = pop(g);
	if (c->flags & XN_QGA_NO_SUCCESS_REPLY) {
		answer(c, json_null(), NULL, NULL);
	} else {
		XN_AUTOFREE char *why = xn_asprintf("no answer within %llu ms",
						    (unsigned long long)c->timeout_ms);
		fail_cmd(c, why);
	}
	if (!g->released)
		kick(g);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	xn_qga *g = h->data;
	if (g->in.cap - g->in.len < READ_CHUNK + 1) {
		g->in.cap = g->in.len + READ_CHUNK + 1;
		g->in.data = xn_realloc(g->in.data, g->in.cap);
	}
	*buf = uv_buf_init(g->in.data + g->in.len, READ_CHUNK);
}

/* A line while SYNCING (after the 0xFF): is it the handshake's echo? */
static void sync_line(xn_qga *g, json_t *msg)
{
	json_t *ret = json_object_get(msg, "return");
	g->after_ff = false;
	if (!json_is_integer(ret) || json_integer_value(ret) != g->sync_id)
		return; /* an older handshake's echo, or noise: wait for the next 0xFF */
	g->state = S_SYNCED;
	g->silent_syncs = 0;
	uv_timer_stop(&g->timer);
	kick(g);
}

/* A line while SYNCED: the answer to the head, if its id matches. */
static void reply_line(xn_qga *g, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	json_t *ret = json_object_get(msg, "return");
	json_t *agent_err = json_object_get(msg, "error");
	if (!g->inflight || (id && json_integer_value(id) != g->head->id) ||
	    (!ret && !json_is_object(agent_err)))
		return;
	uv_timer_stop(&g->timer);
	qga_cmd *c = pop(g);
	answer(c, ret, ret ? NULL : agent_err, NULL);
	if (!g->released)
		kick(g);
}

static void process_line(xn_qga *g, const char *line, size_t len)
{
	while (len && (unsigned char)line[0] == 0xFF) {
		line++;
		len--;
	}
	json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return; /* not JSON from an agent; never fatal */
	}
	if (g->state == S_SYNCING)
		sync_line(g, msg);
	else if (g->state == S_SYNCED)
		reply_line(g, msg);
	json_decref(msg);
}

/* While SYNCING and before the agent's 0xFF, drop what precedes it. */
static void skip_to_ff(xn_qga *g)
{
	char *ff = memchr(g->in.data, 0xFF, g->in.len);
	xn_buf_consume(&g->in, ff ? (size_t)(ff - g->in.data) + 1 : g->in.len);
	g->after_ff = ff != NULL;
}

static void process_input(xn_qga *g)
{
	while (!g->released && g->state != S_CLOSED && g->in.len) {
		if (g->state == S_SYNCING && !g->after_ff) {
			skip_to_ff(g);
			continue;
		}
		char *nl = memchr(g->in.data, '\n', g->in.len);
		if (!nl) {
			if (g->in.len > XN_QGA_MAX_LINE) {
				xn_warn("qga: '%s': a line longer than %u bytes: dropped", g->path,
					XN_QGA_MAX_LINE);
				xn_buf_consume(&g->in, g->in.len);
				if (g->state == S_SYNCED && !g->inflight)
					g->state = S_UNSYNCED;
			}
			return;
		}
		size_t len = (size_t)(nl - g->in.data);
		XN_AUTOFREE char *line = xn_strndup(g->in.data, len);
		xn_buf_consume(&g->in, len + 1);
		if (g->state == S_SYNCING || g->state == S_SYNCED)
			process_line(g, line, len);
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	xn_qga *g = s->data;
	if (g->released || g->state == S_CLOSED)
		return;
	if (nread < 0) {
		drop_connection(g, nread == UV_EOF ? "QEMU closed the agent's socket"
						   : uv_strerror((int)nread));
		return;
	}
	g->in.len += (size_t)nread;
	process_input(g);
}

/* ---- connecting and sending ---- */

static void on_connect(uv_connect_t *req, int status)
{
	xn_qga *g = req->data;
	if (status == UV_ECANCELED || g->released || g->state != S_CONNECTING)
		return; /* closed meanwhile */
	if (status == 0)
		status = uv_read_start((uv_stream_t *)&g->pipe, on_alloc, on_read);
	if (status < 0) {
		XN_AUTOFREE char *why = xn_asprintf("cannot connect to '%s': %s", g->path,
						    uv_strerror(status));
		drop_connection(g, why);
		return;
	}
	g->state = S_UNSYNCED;
	kick(g);
}

static void start_connect(xn_qga *g)
{
	uv_pipe_init(g->loop, &g->pipe, 0);
	g->pipe.data = g;
	g->open_handles++;
	g->connect.data = g;
	g->state = S_CONNECTING;
	uv_pipe_connect(&g->connect, &g->pipe, g->path, on_connect);
}

static void start_sync(xn_qga *g)
{
	xn_random_bytes(&g->sync_id, sizeof(g->sync_id));
	g->sync_id = (g->sync_id & 0x3fffffff) + 1;
	g->state = S_SYNCING;
	g->after_ff = false;
	/* What an earlier agent left unread would precede the 0xFF anyway. */
	xn_buf_consume(&g->in, g->in.len);
	json_t *msg = json_pack("{s:s, s:{s:I}}", "execute", "guest-sync-delimited", "arguments",
				"id", (json_int_t)g->sync_id);
	uv_timer_start(&g->timer, on_timer, g->head->timeout_ms, 0);
	send_line(g, "\xff", msg);
	json_decref(msg);
}

static void send_head(xn_qga *g)
{
	qga_cmd *c = g->head;
	c->id = ++g->next_id;
	json_t *msg = json_pack("{s:s, s:O*, s:I}", "execute", c->name, "arguments", c->args,
				"id", (json_int_t)c->id);
	g->inflight = true;
	uv_timer_start(&g->timer, on_timer, c->timeout_ms, 0);
	send_line(g, "", msg);
	json_decref(msg);
}

/* Move the head along: connect, synchronise or send, as the state says. */
static void kick(xn_qga *g)
{
	if (!g->head || g->inflight || g->released)
		return;
	switch (g->state) {
	case S_CLOSED:
		start_connect(g);
		break;
	case S_UNSYNCED:
		start_sync(g);
		break;
	case S_SYNCED:
		send_head(g);
		break;
	case S_CONNECTING:
	case S_SYNCING:
		break;
	}
}

static void on_idle_kick(uv_timer_t *t)
{
	kick(t->data);
}

/* ---- public ---- */

xn_qga *xn_qga_new(uv_loop_t *loop, const char *path)
{
	xn_qga *g = xn_calloc(1, sizeof(*g));
	g->loop = loop;
	g->path = xn_strdup(path);
	g->state = S_CLOSED;
	uv_timer_init(loop, &g->timer);
	g->timer.data = g;
	g->open_handles = 1;
	return g;
}

void xn_qga_command(xn_qga *g, const char *name, json_t *args, unsigned flags,
		    uint64_t timeout_ms, xn_qga_reply_fn fn, void *ud)
{
	qga_cmd *c = xn_calloc(1, sizeof(*c));
	*c = (qga_cmd){.name = xn_strdup(name), .args = args, .flags = flags,
		       .timeout_ms = timeout_ms ? timeout_ms : 1, .fn = fn, .ud = ud};
	if (g->released) {
		cmd_free(c); /* misuse: g is going away; nobody to tell */
		return;
	}
	if (g->tail)
		g->tail->next = c;
	else
		g->head = c;
	g->tail = c;
	/* From the loop, so that no callback runs inside this call. */
	if (c == g->head && !uv_is_active((uv_handle_t *)&g->timer))
		uv_timer_start(&g->timer, on_idle_kick, 0, 0);
}

bool xn_qga_synced(const xn_qga *g)
{
	return g->state == S_SYNCED;
}

void xn_qga_close(xn_qga *g)
{
	if (!g || g->released)
		return;
	g->released = true;
	uv_timer_stop(&g->timer);
	qga_cmd *c;
	while ((c = pop(g)))
		fail_cmd(c, "the guest agent client was closed");
	close_pipe(g);
	uv_close((uv_handle_t *)&g->timer, on_handle_closed);
}
