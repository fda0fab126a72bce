/* qmp.c: the QMP client (qmp.h).
 *
 * A small state machine on one timer and one socket:
 *
 *   CONNECTING --connect--> GREETING --{"QMP"}--> CAPS --return--> READY
 *        |  (timer: retry)      |  (timer: deadline)   |              |
 *        +----------------------+---------------------+--------------+--> DEAD
 *
 * The socket is connected with a plain non-blocking connect(2) (a unix
 * socket connects at once or fails at once) and then handed to libuv as
 * a uv_pipe_t, so a failed attempt costs no libuv handle. Commands wait
 * in a FIFO and go out one at a time; the next leaves when the reply to
 * the previous one has come. That keeps replies trivially matched, and
 * it is what lets `getfd` use sendmsg(2) directly on the socket: when its
 * turn comes and libuv holds no unwritten bytes, nothing can overtake.
 *
 * Ordering note: callbacks may call back into this file (queue, close).
 * Every loop that runs callbacks detaches the item it works on first and
 * re-checks the state after each callback; memory is freed only from the
 * handles' close callbacks, which libuv runs after the current callback
 * stack has unwound. */
#include "engine/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

enum qmp_state { S_CONNECTING, S_GREETING, S_CAPS, S_READY, S_DEAD };
/* What the end of the session still has to report. */
enum qmp_notify { N_NONE, N_READY_ERR, N_CLOSED };

#define RETRY_FIRST_MS 5
#define RETRY_MAX_MS 100
#define READ_CHUNK 65536

typedef struct qmp_cmd {
	struct qmp_cmd *next;
	char *name;
	char *line;          /* the request, newline-terminated */
	int fd;              /* attached with SCM_RIGHTS, or -1 */
	char *error;         /* fail with this when its turn comes */
	json_int_t id;
	xn_qmp_reply_fn fn;
	void *ud;
} qmp_cmd;

typedef struct qmp_write {
	uv_write_t req;
	char *data;
} qmp_write;

struct xn_qmp {
	uv_loop_t *loop;
	char *path;
	struct xn_qmp_callbacks cb;
	enum qmp_state state;
	bool closing;        /* inside or after xn_qmp_close: no ready() */
	bool released;       /* xn_qmp_close done: free once handles close */
	bool pipe_open;
	int open_handles;
	enum qmp_notify notify;
	char *end_why;       /* why the session ended */
	uint64_t deadline;   /* uv_now() time by which READY must be reached */
	unsigned retry_ms;
	uv_timer_t timer;
	uv_pipe_t pipe;
	char *rbuf;          /* bytes read, not yet consumed */
	size_t rlen, rcap, scanned;
	qmp_cmd *head, *tail;
	qmp_cmd *inflight;
	uint64_t next_id;
};

static void send_next(xn_qmp *q);

/* ---- commands ---- */

static qmp_cmd *cmd_new(xn_qmp *q, const char *name, json_t *args, int fd)
{
	qmp_cmd *c = xn_calloc(1, sizeof(*c));
	c->name = xn_strdup(name);
	c->fd = fd;
	c->id = (json_int_t)++q->next_id;
	json_t *msg = json_pack("{s:s, s:o*, s:I}", "execute", name, "arguments", args, "id",
				c->id);
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	c->line = xn_asprintf("%s\n", s);
	free(s);
	return c;
}

static void cmd_free(qmp_cmd *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->name);
	free(c->line);
	free(c->error);
	free(c);
}

static void cmd_fail(qmp_cmd *c, const char *why)
{
	if (c->fn) {
		XN_AUTOERR xn_error *err = NULL;
		xn_fail_internal(&err, "QMP command '%s' failed: %s", c->name, why);
		c->fn(c->ud, NULL, err);
	}
	cmd_free(c);
}

static void enqueue(xn_qmp *q, qmp_cmd *c)
{
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
}

static qmp_cmd *dequeue(xn_qmp *q)
{
	qmp_cmd *c = q->head;
	if (c) {
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
		c->next = NULL;
	}
	return c;
}

/* Fail the in-flight command and every queued one, including those that
 * callbacks queue meanwhile. */
static void fail_pending(xn_qmp *q, const char *why)
{
	qmp_cmd *c = q->inflight;
	q->inflight = NULL;
	if (c)
		cmd_fail(c, why);
	while ((c = dequeue(q)))
		cmd_fail(c, why);
}

/* ---- teardown ---- */

static void free_qmp(xn_qmp *q)
{
	free(q->rbuf);
	free(q->path);
	free(q->end_why);
	free(q);
}

static void on_handle_closed(uv_handle_t *h)
{
	xn_qmp *q = h->data;
	if (--q->open_handles == 0 && q->released)
		free_qmp(q);
}

/* Deliver the end of the session once: closed after READY, ready(err)
 * before it unless the user closed first. */
static void notify_end(xn_qmp *q)
{
	enum qmp_notify n = q->notify;
	q->notify = N_NONE;
	if (n == N_CLOSED && q->cb.closed) {
		q->cb.closed(q->cb.ud);
	} else if (n == N_READY_ERR && !q->closing && q->cb.ready) {
		XN_AUTOERR xn_error *err = NULL;
		xn_fail_internal(&err, "cannot connect to QMP socket '%s': %s", q->path,
				 q->end_why);
		q->cb.ready(q->cb.ud, err);
	}
}

/* The session is over: close the socket, fail what is pending, report. */
static void end_session(xn_qmp *q, const char *why)
{
	if (q->state == S_DEAD)
		return;
	q->notify = q->state == S_READY ? N_CLOSED : N_READY_ERR;
	q->state = S_DEAD;
	q->end_why = xn_strdup(why); /* why may point into memory freed below */
	uv_timer_stop(&q->timer);
	if (q->pipe_open) {
		q->pipe_open = false;
		uv_close((uv_handle_t *)&q->pipe, on_handle_closed);
	}
	xn_debug("qmp: session on '%s' ended: %s", q->path, q->end_why);
	fail_pending(q, q->end_why);
	notify_end(q);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
	qmp_write *w = (qmp_write *)req;
	xn_qmp *q = req->handle->data;
	free(w->data);
	free(w);
	if (q->state == S_DEAD)
		return;
	if (status < 0) {
		XN_AUTOFREE char *why = xn_asprintf("cannot write to QEMU: %s", uv_strerror(status));
		end_session(q, why);
		return;
	}
	send_next(q); /* a getfd may have been waiting for the queue to drain */
}

static void write_bytes(xn_qmp *q, const char *data, size_t len)
{
	qmp_write *w = xn_calloc(1, sizeof(*w));
	w->data = xn_strndup(data, len);
	uv_buf_t buf = uv_buf_init(w->data, (unsigned int)len);
	int r = uv_write(&w->req, (uv_stream_t *)&q->pipe, &buf, 1, on_write);
	if (r < 0) {
		free(w->data);
		free(w);
		XN_AUTOFREE char *why = xn_asprintf("cannot write to QEMU: %s", uv_strerror(r));
		end_session(q, why);
	}
}

/* sendmsg with the fd on the first byte; the rest, if the kernel took
 * only part, goes through libuv. Only called with libuv's queue empty. */
static int send_with_fd(xn_qmp *q, qmp_cmd *c)
{
	uv_os_fd_t sock;
	uv_fileno((uv_handle_t *)&q->pipe, &sock);
	size_t len = strlen(c->line);
	struct iovec iov = {.iov_base = c->line, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n < len)
		write_bytes(q, c->line + n, len - (size_t)n);
	return 0;
}

static void send_next(xn_qmp *q)
{
	if (q->state != S_READY || q->inflight || !q->head)
		return;
	if (q->head->fd >= 0 && uv_stream_get_write_queue_size((uv_stream_t *)&q->pipe) > 0)
		return; /* on_write calls again once libuv's queue is empty */
	qmp_cmd *c = dequeue(q);
	if (c->error) {
		cmd_fail(c, c->error);
		send_next(q);
		return;
	}
	q->inflight = c;
	if (c->fd < 0) {
		write_bytes(q, c->line, strlen(c->line));
		return;
	}
	int r = send_with_fd(q, c);
	if (r < 0) {
		q->inflight = NULL;
		cmd_fail(c, strerror(-r));
		send_next(q);
	}
}

/* ---- reading ---- */

static void on_caps_reply(void *ud, json_t *ret, const xn_error *err)
{
	xn_qmp *q = ud;
	if (err || q->state != S_CAPS) {
		if (q->state == S_CAPS)
			end_session(q, err->message);
		return;
	}
	q->state = S_READY;
	uv_timer_stop(&q->timer);
	if (q->cb.ready)
		q->cb.ready(q->cb.ud, NULL);
	send_next(q);
}

static void on_greeting(xn_qmp *q)
{
	qmp_cmd *c = cmd_new(q, "qmp_capabilities", NULL, -1);
	c->fn = on_caps_reply;
	c->ud = q;
	q->state = S_CAPS;
	q->inflight = c;
	write_bytes(q, c->line, strlen(c->line));
}

static void on_reply(xn_qmp *q, json_t *msg)
{
	qmp_cmd *c = q->inflight;
	json_t *id = json_object_get(msg, "id");
	/* QEMU omits the id only when it could not parse the request, which
	 * then was the one in flight. */
	if (!c || (id && json_integer_value(id) != c->id)) {
		xn_warn("qmp: '%s': unexpected reply dropped", q->path);
		return;
	}
	q->inflight = NULL;
	json_t *ret = json_object_get(msg, "return");
	XN_AUTOERR xn_error *err = NULL;
	if (!ret) {
		json_t *e = json_object_get(msg, "error");
		const char *desc = json_string_value(json_object_get(e, "desc"));
		xn_fail_internal(&err, "QMP command '%s' failed: %s", c->name,
				 desc ? desc : "unknown error");
	}
	if (c->fn)
		c->fn(c->ud, ret, err);
	cmd_free(c);
	send_next(q);
}

static void dispatch(xn_qmp *q, json_t *msg)
{
	const char *event = json_string_value(json_object_get(msg, "event"));
	if (json_object_get(msg, "QMP")) {
		if (q->state == S_GREETING)
			on_greeting(q);
	} else if (event) {
		if (q->state == S_READY && q->cb.event)
			q->cb.event(q->cb.ud, event, json_object_get(msg, "data"));
	} else if (json_object_get(msg, "return") || json_object_get(msg, "error")) {
		on_reply(q, msg);
	} else {
		xn_warn("qmp: '%s': unknown message dropped", q->path);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	xn_qmp *q = h->data;
	if (q->rcap - q->rlen < READ_CHUNK) {
		/* Doubling: a long line costs O(n) copies, not O(n^2). */
		q->rcap = q->rcap * 2 > q->rlen + READ_CHUNK ? q->rcap * 2 : q->rlen + READ_CHUNK;
		q->rbuf = xn_realloc(q->rbuf, q->rcap);
	}
	*buf = uv_buf_init(q->rbuf + q->rlen, (unsigned int)(q->rcap - q->rlen));
}

static bool blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\r' && p[i] != '\t')
			return false;
	return true;
}

/* Dispatch every complete line in the buffer, then keep the partial one. */
static void process_lines(xn_qmp *q)
{
	size_t start = 0;
	while (q->state != S_DEAD) {
		char *nl = memchr(q->rbuf + q->scanned, '\n', q->rlen - q->scanned);
		if (!nl) {
			q->scanned = q->rlen;
			break;
		}
		const char *line = q->rbuf + start;
		size_t len = (size_t)(nl - line);
		start += len + 1;
		q->scanned = start;
		if (blank(line, len))
			continue;
		json_error_t jerr;
		json_t *msg = json_loadb(line, len, 0, &jerr);
		/* QEMU writes uint64 values past int64's range (the balloon's
		 * guest-stats say "no value" with 2^64-1): such a message is
		 * read with its integers as reals rather than ending the session */
		if (!msg && (msg = json_loadb(line, len, JSON_DECODE_INT_AS_REAL, NULL)) &&
		    json_is_real(json_object_get(msg, "id")))
			json_object_set_new(msg, "id", json_integer((json_int_t)json_real_value(
								json_object_get(msg, "id"))));
		if (!msg) {
			XN_AUTOFREE char *why = xn_asprintf("bad JSON from QEMU: %s", jerr.text);
			end_session(q, why);
			break;
		}
		dispatch(q, msg);
		json_decref(msg);
	}
	memmove(q->rbuf, q->rbuf + start, q->rlen - start);
	q->rlen -= start;
	q->scanned -= start;
	if (q->state != S_DEAD && q->rlen > XN_QMP_MAX_LINE)
		end_session(q, "message from QEMU too long");
	if (q->rlen == 0 && q->rcap > 4 * READ_CHUNK) {
		/* Give back what a long reply made us hold. */
		free(q->rbuf);
		q->rbuf = NULL;
		q->rcap = 0;
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	xn_qmp *q = s->data;
	if (q->state == S_DEAD)
		return;
	if (nread < 0) {
		end_session(q, nread == UV_EOF ? "QEMU closed the connection"
					       : uv_strerror((int)nread));
		return;
	}
	q->rlen += (size_t)nread;
	process_lines(q);
}

/* ---- connecting ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(xn_qmp *q, uint64_t ms)
{
	uv_timer_start(&q->timer, on_timer, ms, 0);
}

static int connect_once(xn_qmp *q)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(q->path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, q->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	uv_pipe_init(q->loop, &q->pipe, 0);
	q->pipe.data = q;
	q->pipe_open = true;
	q->open_handles++;
	int r = uv_pipe_open(&q->pipe, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	return uv_read_start((uv_stream_t *)&q->pipe, on_alloc, on_read);
}

static void try_connect(xn_qmp *q)
{
	int r = connect_once(q);
	uint64_t now = uv_now(q->loop);
	if (r == 0) {
		q->state = S_GREETING;
		arm_timer(q, q->deadline > now ? q->deadline - now : 0);
		return;
	}
	bool transient = r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN;
	if (!transient || now >= q->deadline) {
		XN_AUTOFREE char *why = xn_asprintf("%s%s", strerror(-r),
						    transient ? " (timed out)" : "");
		end_session(q, why);
		return;
	}
	uint64_t wait = q->retry_ms < q->deadline - now ? q->retry_ms : q->deadline - now;
	q->retry_ms = q->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : q->retry_ms * 2;
	arm_timer(q, wait);
}

static void on_timer(uv_timer_t *t)
{
	xn_qmp *q = t->data;
	switch (q->state) {
	case S_CONNECTING:
		try_connect(q);
		break;
	case S_GREETING:
	case S_CAPS:
		end_session(q, "timed out waiting for QEMU's greeting");
		break;
	case S_READY:
		break;
	case S_DEAD:
		fail_pending(q, "the QMP session is over");
		break;
	}
}

xn_qmp *xn_qmp_connect(uv_loop_t *loop, const char *path, uint64_t timeout_ms,
		       const struct xn_qmp_callbacks *cb)
{
	xn_qmp *q = xn_calloc(1, sizeof(*q));
	q->loop = loop;
	q->path = xn_strdup(path);
	q->cb = *cb;
	q->state = S_CONNECTING;
	q->retry_ms = RETRY_FIRST_MS;
	uv_update_time(loop); /* the cached loop time may be stale here */
	q->deadline = uv_now(loop) + timeout_ms;
	uv_timer_init(loop, &q->timer);
	q->timer.data = q;
	q->open_handles = 1;
	arm_timer(q, 0); /* first attempt from the loop: failures are never synchronous */
	return q;
}

/* ---- public queueing and close ---- */

static void submit(xn_qmp *q, qmp_cmd *c)
{
	if (q->released) {
		cmd_free(c); /* misuse: q is going away; nobody to tell */
		return;
	}
	enqueue(q, c);
	if (q->state == S_DEAD)
		arm_timer(q, 0);
	else
		send_next(q);
}

void xn_qmp_command(xn_qmp *q, const char *name, json_t *args, xn_qmp_reply_fn fn, void *ud)
{
	qmp_cmd *c = cmd_new(q, name, args, -1);
	c->fn = fn;
	c->ud = ud;
	submit(q, c);
}

void xn_qmp_send_fd(xn_qmp *q, int fd, const char *fdname, xn_qmp_reply_fn fn, void *ud)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	qmp_cmd *c = cmd_new(q, "getfd", json_pack("{s:s}", "fdname", fdname), copy);
	c->fn = fn;
	c->ud = ud;
	if (copy < 0)
		c->error = xn_asprintf("cannot duplicate fd %d: %s", fd, strerror(errno));
	submit(q, c);
}

void xn_qmp_close(xn_qmp *q)
{
	if (!q || q->closing)
		return;
	q->closing = true;
	end_session(q, "the QMP session was closed");
	/* Called from a callback of the end of the session, the outer
	 * end_session is still delivering: finish its work here. */
	fail_pending(q, "the QMP session was closed");
	notify_end(q);
	q->released = true;
	uv_close((uv_handle_t *)&q->timer, on_handle_closed);
}
