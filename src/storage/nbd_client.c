/* nbd_client.c: libnbd's asynchronous API on the libuv loop, talking to
 * a private qemu-nbd (nbd_client.h).
 *
 * libnbd runs completion callbacks with its handle lock held, when no
 * other call on the handle is allowed; so they only queue the finished
 * request, and the queue is delivered to our callers after each libnbd
 * call returns (deliver). Every request is also kept on a list until
 * delivered: whatever libnbd does with requests when a connection dies
 * or the handle is closed, each caller hears about its request exactly
 * once. */
#include "storage/nbd_client.h"

#include <errno.h>
#include <libnbd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

/* qemu-nbd needs a moment to create its socket: retry connecting every
 * CONNECT_RETRY_MS for CONNECT_TRIES tries. A server that does not exit
 * within EXIT_WAIT_MS of the disconnect is killed. */
#define CONNECT_RETRY_MS 10
#define CONNECT_TRIES 1000
#define EXIT_WAIT_MS 30000

struct op {
	xn_nbd *n;
	xn_nbd_cb done;
	void *ud;
	int error;
	bool finished;
	struct op *prev, *next;   /* n->ops: requests not yet delivered */
};

struct xn_nbd {
	uv_loop_t *loop;
	struct nbd_handle *h;
	uv_poll_t *poll;          /* on h's socket; NULL when none */
	int events;
	uv_timer_t *timer;        /* connect retries, then the exit deadline */
	char *sock, *pidfile, *output;
	int tries;
	bool connected, exited, delivering, closing;
	xn_nbd_ready ready;       /* NULL once called */
	void *ud;
	void (*closed)(void *ud);
	void *closed_ud;
	struct op *ops;
	unsigned in_flight;
};

static void on_poll(uv_poll_t *p, int status, int events);

/* ---- requests ----------------------------------------------------------- */

static int op_finished(void *user_data, int *error)
{
	struct op *o = user_data;
	o->error = *error;
	o->finished = true;
	return 1; /* retire the command */
}

static void op_unlink(xn_nbd *n, struct op *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		n->ops = o->next;
	if (o->next)
		o->next->prev = o->prev;
	n->in_flight--;
}

/* Hand finished requests to their callers (outside any libnbd call). */
static void deliver(xn_nbd *n)
{
	if (n->delivering)
		return; /* the loop further up the stack goes on */
	n->delivering = true;
	for (bool again = true; again;) {
		again = false;
		for (struct op *o = n->ops; o; o = o->next) {
			if (!o->finished)
				continue;
			op_unlink(n, o);
			o->done(o->ud, o->error);
			free(o);
			again = true; /* the list may have changed under the callback */
			break;
		}
	}
	n->delivering = false;
}

/* Every request not finished fails with error (the connection is gone). */
static void fail_all(xn_nbd *n, int error)
{
	for (struct op *o = n->ops; o; o = o->next)
		if (!o->finished) {
			o->finished = true;
			o->error = error;
		}
	deliver(n);
}

static void poll_stop(xn_nbd *n)
{
	if (n->poll) {
		uv_close((uv_handle_t *)n->poll, (uv_close_cb)free);
		n->poll = NULL;
	}
	n->events = 0;
}

/* Watch the socket in the directions libnbd wants. */
static void update_poll(xn_nbd *n)
{
	if (!n->h)
		return;
	int fd = nbd_aio_get_fd(n->h);
	if (fd < 0 || nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h))
		return;
	if (!n->poll) {
		n->poll = xn_calloc(1, sizeof(*n->poll));
		uv_poll_init(n->loop, n->poll, fd);
		n->poll->data = n;
	}
	unsigned dir = nbd_aio_get_direction(n->h);
	int ev = (dir & LIBNBD_AIO_DIRECTION_READ ? UV_READABLE : 0) |
		 (dir & LIBNBD_AIO_DIRECTION_WRITE ? UV_WRITABLE : 0);
	if (ev != n->events) {
		uv_poll_start(n->poll, ev, on_poll);
		n->events = ev;
	}
}

static struct op *op_new(xn_nbd *n, xn_nbd_cb done, void *ud)
{
	struct op *o = xn_calloc(1, sizeof(*o));
	o->n = n;
	o->done = done;
	o->ud = ud;
	o->next = n->ops;
	if (n->ops)
		n->ops->prev = o;
	n->ops = o;
	n->in_flight++;
	return o;
}

/* After issuing: a request libnbd refused is forgotten (-1, no callback). */
static int issued(xn_nbd *n, struct op *o, int64_t cookie)
{
	if (cookie < 0) {
		xn_debug("nbd: request refused: %s", nbd_get_error());
		op_unlink(n, o);
		free(o);
		return -1;
	}
	update_poll(n);
	deliver(n);
	return 0;
}

static bool usable(const xn_nbd *n)
{
	return n->connected && !n->closing && n->h && !nbd_aio_is_dead(n->h);
}

int xn_nbd_pread(xn_nbd *n, void *buf, size_t len, uint64_t off, xn_nbd_cb done, void *ud)
{
	if (!usable(n))
		return -1;
	struct op *o = op_new(n, done, ud);
	nbd_completion_callback cb = {.callback = op_finished, .user_data = o};
	return issued(n, o, nbd_aio_pread(n->h, buf, len, off, cb, 0));
}

int xn_nbd_pwrite(xn_nbd *n, const void *buf, size_t len, uint64_t off, xn_nbd_cb done,
		  void *ud)
{
	if (!usable(n))
		return -1;
	struct op *o = op_new(n, done, ud);
	nbd_completion_callback cb = {.callback = op_finished, .user_data = o};
	return issued(n, o, nbd_aio_pwrite(n->h, buf, len, off, cb, 0));
}

int xn_nbd_flush(xn_nbd *n, xn_nbd_cb done, void *ud)
{
	if (!usable(n))
		return -1;
	struct op *o = op_new(n, done, ud);
	nbd_completion_callback cb = {.callback = op_finished, .user_data = o};
	return issued(n, o, nbd_aio_flush(n->h, cb, 0));
}

unsigned xn_nbd_in_flight(const xn_nbd *n)
{
	return n->in_flight;
}

int64_t xn_nbd_size(const xn_nbd *n)
{
	return n->h && n->connected ? nbd_get_size(n->h) : -1;
}

/* ---- connecting ------------------------------------------------------------- */

static void report_ready(xn_nbd *n, xn_error *err)
{
	xn_nbd_ready ready = n->ready;
	n->ready = NULL;
	if (ready)
		ready(n->ud, err);
	else
		xn_error_free(err);
}

static void try_connect(uv_timer_t *t);

static void drop_handle(xn_nbd *n)
{
	poll_stop(n);
	nbd_close(n->h);
	n->h = NULL;
}

/* A connection attempt failed: again a little later, while the server runs. */
static void connect_failed(xn_nbd *n)
{
	drop_handle(n);
	if (n->closing || n->exited || ++n->tries > CONNECT_TRIES) {
		xn_error *err = NULL;
		if (!n->closing)
			xn_fail(&err, "SR_BACKEND_FAILURE", "qemu-nbd", "open",
				n->output ? n->output : "the server did not answer", NULL);
		report_ready(n, err);
		return;
	}
	uv_timer_start(n->timer, try_connect, CONNECT_RETRY_MS, 0);
}

static void try_connect(uv_timer_t *t)
{
	xn_nbd *n = t->data;
	if (n->exited) { /* it could not start, or gave up */
		connect_failed(n);
		return;
	}
	n->h = nbd_create();
	if (!n->h || nbd_aio_connect_unix(n->h, n->sock) < 0) {
		connect_failed(n);
		return;
	}
	update_poll(n);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	xn_nbd *n = p->data;
	if (status < 0)
		events = UV_READABLE | UV_WRITABLE; /* let libnbd find out what broke */
	if (events & UV_READABLE)
		nbd_aio_notify_read(n->h);
	if (events & UV_WRITABLE)
		nbd_aio_notify_write(n->h);
	bool dead = nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h);
	if (!n->connected) {
		if (dead) {
			connect_failed(n);
		} else if (nbd_aio_is_ready(n->h)) {
			n->connected = true;
			update_poll(n);
			report_ready(n, NULL);
		} else {
			update_poll(n);
		}
		return;
	}
	if (dead) {
		xn_debug("nbd: connection to '%s' lost: %s", n->sock, nbd_get_error());
		poll_stop(n);
		fail_all(n, ENOTCONN);
		return;
	}
	deliver(n);
	update_poll(n);
}

/* ---- the server ---------------------------------------------------------- */

static void finish_close(xn_nbd *n)
{
	uv_close((uv_handle_t *)n->timer, (uv_close_cb)free);
	unlink(n->sock);
	unlink(n->pidfile);
	void (*closed)(void *) = n->closed;
	void *ud = n->closed_ud;
	free(n->sock);
	free(n->pidfile);
	free(n->output);
	free(n);
	if (closed)
		closed(ud);
}

static void finish_later(uv_timer_t *t)
{
	finish_close(t->data);
}

static void server_exited(void *ud, int status, const char *output)
{
	xn_nbd *n = ud;
	n->exited = true;
	if (status != 0) {
		xn_debug("nbd: qemu-nbd for '%s' exited with %d: %s", n->sock, status, output);
		free(n->output);
		n->output = xn_strdup(output);
	}
	if (n->closing && !n->h)
		finish_close(n);
}

static void kill_server(uv_timer_t *t)
{
	xn_nbd *n = t->data;
	XN_AUTOFREE char *pid = xn_read_file(n->pidfile, NULL, NULL);
	xn_warn("nbd: qemu-nbd for '%s' did not exit; killing it", n->sock);
	if (pid && atoi(pid) > 1)
		kill(atoi(pid), SIGKILL);
}

xn_nbd *xn_nbd_open(uv_loop_t *loop, const char *image, const char *fmt,
		    enum xn_nbd_mode mode, const char *sock, xn_nbd_ready ready, void *ud)
{
	xn_nbd *n = xn_calloc(1, sizeof(*n));
	n->loop = loop;
	n->sock = xn_strdup(sock);
	n->pidfile = xn_asprintf("%s.pid", sock);
	n->ready = ready;
	n->ud = ud;
	n->timer = xn_calloc(1, sizeof(*n->timer));
	uv_timer_init(loop, n->timer);
	n->timer->data = n;
	unlink(sock);
	XN_AUTOSTRV char **argv = xn_strv_new();
	xn_strv_push(&argv, "qemu-nbd");
	xn_strv_pushf(&argv, "--format=%s", fmt);
	xn_strv_pushf(&argv, "--socket=%s", sock);
	xn_strv_pushf(&argv, "--pid-file=%s", n->pidfile);
	xn_strv_push(&argv, mode == XN_NBD_WRITE_UNSAFE ? "--cache=unsafe" : "--cache=writeback");
	if (mode == XN_NBD_READ)
		xn_strv_push(&argv, "--read-only");
	xn_strv_push(&argv, image);
	XN_AUTOERR xn_error *err = NULL;
	if (xn_run(loop, argv, server_exited, n, &err) < 0) {
		n->exited = true; /* try_connect reports it, after we returned */
		n->output = xn_strdup(err->message);
	}
	uv_timer_start(n->timer, try_connect, n->exited ? 0 : CONNECT_RETRY_MS, 0);
	return n;
}

void xn_nbd_close(xn_nbd *n, void (*closed)(void *ud), void *ud)
{
	n->closing = true;
	n->closed = closed;
	n->closed_ud = ud;
	uv_timer_stop(n->timer);
	if (n->h) {
		/* Closing the socket ends the server (it serves one client). */
		poll_stop(n);
		nbd_close(n->h);
		n->h = NULL;
	}
	fail_all(n, ECANCELED);
	n->ready = NULL; /* a caller that gave up hears nothing more */
	/* never free n here: a caller may be inside one of our callbacks */
	if (n->exited)
		uv_timer_start(n->timer, finish_later, 0, 0);
	else
		uv_timer_start(n->timer, kill_server, EXIT_WAIT_MS, 0);
}
