/* Tests of the guest-agent client (engine/qga.h) against a scripted fake
 * agent in the same loop. The fake stands where QEMU's socket is: while
 * "asleep" it holds every byte the client writes, unanswered, as QEMU
 * does while no agent has the port open in the guest; once woken it
 * speaks the agent's protocol over everything held so far (0xFF resets
 * its parser, guest-sync-delimited is echoed after a 0xFF, ids are
 * echoed), so late answers to old requests reach the client as they do
 * from a real agent that starts late. Every wait is bounded. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "uvwait.h"
#include "engine/qga.h"
#include "util/fs.h"

static char dir[] = "/tmp/xn-test-qga-XXXXXX";

/* ---- the fake agent ---- */

typedef struct fake {
	uv_pipe_t server, client;
	bool connected, awake;
	xn_buf in;            /* bytes from the client not processed yet */
	int syncs;            /* handshakes answered */
	int commands;         /* other requests answered or not */
	int accepts;          /* connections */
	bool old_echo;        /* echo a stale handshake id before the real one */
} fake;

static void fake_written(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void fake_write(fake *f, const char *data, size_t len)
{
	if (!f->connected)
		return;
	uv_write_t *w = xn_malloc(sizeof(*w) + len);
	memcpy(w + 1, data, len);
	uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned int)len);
	uv_write(w, (uv_stream_t *)&f->client, &b, 1, fake_written);
}

static void fake_writef(fake *f, const char *fmt, ...) XN_PRINTF(2, 3);
static void fake_writef(fake *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *s = xn_vasprintf(fmt, ap);
	va_end(ap);
	fake_write(f, s, strlen(s));
}

static void fake_answer(fake *f, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "execute"));
	json_t *args = json_object_get(req, "arguments");
	long long id = json_integer_value(json_object_get(req, "id"));
	if (xn_streq(cmd, "guest-sync-delimited")) {
		f->syncs++;
		if (f->old_echo)
			fake_write(f, "\xff{\"return\": 12345}\n", 20);
		fake_writef(f, "\xff{\"return\": %lld}\n",
			    (long long)json_integer_value(json_object_get(args, "id")));
		return;
	}
	f->commands++;
	if (xn_streq(cmd, "echo")) {
		XN_AUTOFREE char *a = json_dumps(args, JSON_COMPACT);
		fake_writef(f, "{\"return\": %s, \"id\": %lld}\n", a, id);
	} else if (xn_streq(cmd, "split")) {
		XN_AUTOFREE char *s = xn_asprintf("{\"return\": {\"n\": 7}, \"id\": %lld}\n", id);
		fake_write(f, s, 5);
		fake_write(f, s + 5, strlen(s) - 5);
	} else if (xn_streq(cmd, "stale")) {
		fake_writef(f, "{\"return\": \"old\", \"id\": %lld}\nnot json\n"
			       "{\"return\": \"new\", \"id\": %lld}\n", id + 1000, id);
	} else if (xn_streq(cmd, "fail")) {
		fake_writef(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}, "
			       "\"id\": %lld}\n", id);
	} else if (xn_streq(cmd, "long")) {
		size_t n = XN_QGA_MAX_LINE + (1u << 16);
		XN_AUTOFREE char *x = xn_malloc(n + 1);
		memset(x, 'x', n);
		x[n] = '\n';
		fake_write(f, x, n + 1);
		fake_writef(f, "{\"return\": \"after\", \"id\": %lld}\n", id);
	} else if (xn_streq(cmd, "guest-shutdown")) {
		const char *mode = json_string_value(json_object_get(args, "mode"));
		if (xn_streq(mode, "bad"))
			fake_writef(f, "{\"error\": {\"class\": \"GenericError\", "
				       "\"desc\": \"mode is invalid\"}, \"id\": %lld}\n", id);
		if (xn_streq(mode, "exit")) { /* the guest is gone, and so is QEMU */
			uv_close((uv_handle_t *)&f->client, NULL);
			f->connected = false;
		}
	} else if (xn_streq(cmd, "close")) {
		uv_close((uv_handle_t *)&f->client, NULL);
		f->connected = false;
	} else if (!xn_streq(cmd, "hang")) {
		fake_writef(f, "{\"return\": {}, \"id\": %lld}\n", id);
	}
}

/* As the agent reads: 0xFF drops a partial request, lines are requests. */
static void fake_process(fake *f)
{
	while (f->awake && f->connected && f->in.len) {
		char *ff = memchr(f->in.data, 0xFF, f->in.len);
		char *nl = memchr(f->in.data, '\n', f->in.len);
		if (ff && (!nl || ff < nl)) {
			xn_buf_consume(&f->in, (size_t)(ff - f->in.data) + 1);
			continue;
		}
		if (!nl)
			return;
		json_t *req = json_loadb(f->in.data, (size_t)(nl - f->in.data), 0, NULL);
		xn_buf_consume(&f->in, (size_t)(nl - f->in.data) + 1);
		CHECK(req != NULL);
		if (req)
			fake_answer(f, req);
		json_decref(req);
	}
}

static void fake_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	(void)h;
	*b = uv_buf_init(xn_malloc(n), (unsigned int)n);
}

static void fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	fake *f = st->data;
	if (n > 0)
		xn_buf_append(&f->in, b->base, (size_t)n);
	free(b->base);
	if (n < 0 && f->connected) {
		uv_close((uv_handle_t *)&f->client, NULL);
		f->connected = false;
	}
	fake_process(f);
}

static void fake_accept(uv_stream_t *server, int status)
{
	(void)status;
	fake *f = server->data;
	CHECK(!f->connected);
	uv_pipe_init(&loop, &f->client, 0);
	f->client.data = f;
	CHECK(uv_accept(server, (uv_stream_t *)&f->client) == 0);
	f->connected = true;
	f->accepts++;
	xn_buf_reset(&f->in);
	uv_read_start((uv_stream_t *)&f->client, fake_alloc, fake_read);
	/* What an earlier agent left behind, before any handshake. */
	fake_write(f, "{\"return\": 1}\ngarbage\n", 22);
}

static void fake_start(fake *f, const char *path, bool awake)
{
	memset(f, 0, sizeof(*f));
	f->awake = awake;
	uv_pipe_init(&loop, &f->server, 0);
	f->server.data = f;
	CHECK(uv_pipe_bind(&f->server, path) == 0);
	CHECK(uv_listen((uv_stream_t *)&f->server, 4, fake_accept) == 0);
}

static void fake_wake(fake *f)
{
	f->awake = true;
	fake_process(f);
}

static void fake_stop(fake *f)
{
	if (f->connected)
		uv_close((uv_handle_t *)&f->client, NULL);
	uv_close((uv_handle_t *)&f->server, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	xn_buf_reset(&f->in);
}

/* ---- answers ---- */

typedef struct answer {
	bool done;
	int calls;
	char *ret;            /* the return value as compact JSON */
	char *agent_err;      /* its desc */
	char *err;
} answer;

static void on_answer(void *ud, json_t *ret, json_t *agent_err, const xn_error *err)
{
	answer *a = ud;
	a->done = true;
	a->calls++;
	CHECK((ret != NULL) + (agent_err != NULL) + (err != NULL) == 1);
	a->ret = ret ? json_dumps(ret, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	a->agent_err = agent_err ? xn_strdup(json_string_value(json_object_get(agent_err, "desc")))
				 : NULL;
	a->err = err ? xn_strdup(err->message) : NULL;
}

static void answer_reset(answer *a)
{
	free(a->ret);
	free(a->agent_err);
	free(a->err);
	memset(a, 0, sizeof(*a));
}

/* Run one command to its answer. */
static void run(xn_qga *g, const char *name, json_t *args, unsigned flags, uint64_t ms,
		answer *a)
{
	answer_reset(a);
	xn_qga_command(g, name, args, flags, ms, on_answer, a);
	CHECK(!a->done); /* never inside the call */
	wait_for(&a->done, ms * 4 + 2000);
}

static char *sock_path(const char *name)
{
	return xn_asprintf("%s/%s", dir, name);
}

/* ---- tests ---- */

TEST(test_no_socket_fails_at_once)
{
	XN_AUTOFREE char *path = sock_path("none.sock");
	xn_qga *g = xn_qga_new(&loop, path);
	answer a = {0};
	uint64_t t0 = uv_now(&loop);
	run(g, "guest-ping", NULL, 0, 5000, &a);
	CHECK(a.err && strstr(a.err, "cannot connect"));
	CHECK(uv_now(&loop) - t0 < 2000);
	CHECK(!xn_qga_synced(g));
	answer_reset(&a);
	xn_qga_close(g);
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* No agent behind QEMU's socket: one handshake timeout fails the whole
 * batch; once the agent starts, it answers the old requests first, and
 * the client takes none of those for the answer to a new one. */
TEST(test_agent_starting_late)
{
	XN_AUTOFREE char *path = sock_path("late.sock");
	fake f;
	fake_start(&f, path, false);
	xn_qga *g = xn_qga_new(&loop, path);
	answer a[3] = {{0}};
	for (int i = 0; i < 3; i++)
		xn_qga_command(g, i == 1 ? "echo" : "guest-ping", json_pack("{s:i}", "old", i), 0,
			       300, on_answer, &a[i]);
	wait_for(&a[2].done, 3000);
	for (int i = 0; i < 3; i++) {
		CHECK(a[i].done && a[i].calls == 1 && a[i].err &&
		      strstr(a[i].err, "does not answer"));
		answer_reset(&a[i]);
	}
	/* a second batch: another handshake, still unanswered */
	run(g, "guest-ping", NULL, 0, 300, &a[0]);
	CHECK(a[0].err != NULL);
	CHECK(f.accepts == 1);
	CHECK(f.in.len > 0 && f.in.len < 200); /* the two handshakes, held */
	fake_wake(&f);
	f.old_echo = true;
	run(g, "echo", json_pack("{s:s}", "v", "fresh"), 0, 2000, &a[0]);
	CHECK_STR(a[0].ret, "{\"v\":\"fresh\"}");
	CHECK(xn_qga_synced(g));
	CHECK(f.syncs == 3); /* the two old handshakes are answered too, and ignored */
	CHECK(f.commands == 1); /* the old batch never left the client */
	answer_reset(&a[0]);
	xn_qga_close(g);
	fake_stop(&f);
}

/* Nobody ever answers: after a few handshakes the client connects anew,
 * so what QEMU holds for the guest stays small. */
TEST(test_silent_agent_bounded)
{
	XN_AUTOFREE char *path = sock_path("silent.sock");
	fake f;
	fake_start(&f, path, false);
	xn_qga *g = xn_qga_new(&loop, path);
	answer a = {0};
	size_t most = 0;
	for (int i = 0; i < 9; i++) {
		run(g, "guest-ping", NULL, 0, 100, &a);
		CHECK(a.err != NULL);
		most = f.in.len > most ? f.in.len : most;
	}
	CHECK(f.accepts == 3);
	CHECK(most > 0 && most < 400);
	answer_reset(&a);
	xn_qga_close(g);
	fake_stop(&f);
}

TEST(test_answers)
{
	XN_AUTOFREE char *path = sock_path("answers.sock");
	fake f;
	fake_start(&f, path, true);
	xn_qga *g = xn_qga_new(&loop, path);
	answer a = {0};
	run(g, "split", NULL, 0, 2000, &a);
	CHECK_STR(a.ret, "{\"n\":7}");
	run(g, "stale", NULL, 0, 2000, &a);
	CHECK_STR(a.ret, "\"new\"");
	run(g, "fail", NULL, 0, 2000, &a);
	CHECK_STR(a.agent_err, "nope");
	CHECK(xn_qga_synced(g));
	int syncs = f.syncs;
	/* an answer that never comes: a timeout, then a new handshake */
	run(g, "hang", NULL, 0, 200, &a);
	CHECK(a.err && strstr(a.err, "no answer within 200 ms"));
	CHECK(!xn_qga_synced(g));
	run(g, "echo", json_pack("{s:i}", "n", 1), 0, 2000, &a);
	CHECK_STR(a.ret, "{\"n\":1}");
	CHECK(f.syncs == syncs + 1);
	/* a line past the limit is dropped; the answer after it still counts */
	run(g, "long", NULL, 0, 3000, &a);
	CHECK_STR(a.ret, "\"after\"");
	/* guest-shutdown: silence is success, an error is an error */
	run(g, "guest-shutdown", json_pack("{s:s}", "mode", "powerdown"),
	    XN_QGA_NO_SUCCESS_REPLY, 200, &a);
	CHECK(a.ret && !a.err && !a.agent_err);
	run(g, "guest-shutdown", json_pack("{s:s}", "mode", "bad"), XN_QGA_NO_SUCCESS_REPLY,
	    2000, &a);
	CHECK_STR(a.agent_err, "mode is invalid");
	answer_reset(&a);
	xn_qga_close(g);
	fake_stop(&f);
}

/* The socket closes under a command (QEMU went away): the command fails;
 * the next one connects again. */
TEST(test_reconnect)
{
	XN_AUTOFREE char *path = sock_path("re.sock");
	fake f;
	fake_start(&f, path, true);
	xn_qga *g = xn_qga_new(&loop, path);
	answer a = {0}, b = {0};
	xn_qga_command(g, "close", NULL, 0, 5000, on_answer, &a);
	xn_qga_command(g, "guest-ping", NULL, 0, 5000, on_answer, &b);
	wait_for(&b.done, 5000);
	CHECK(a.err && strstr(a.err, "closed"));
	CHECK(b.err != NULL);
	answer_reset(&b);
	run(g, "echo", json_pack("{s:b}", "again", 1), 0, 2000, &a);
	CHECK_STR(a.ret, "{\"again\":true}");
	/* after guest-shutdown, the socket closing is success; what waits
	 * behind it fails */
	xn_qga_command(g, "guest-shutdown", json_pack("{s:s}", "mode", "exit"),
		       XN_QGA_NO_SUCCESS_REPLY, 5000, on_answer, &b);
	answer_reset(&a);
	xn_qga_command(g, "guest-ping", NULL, 0, 5000, on_answer, &a);
	wait_for(&a.done, 5000);
	CHECK(b.done && b.ret && !b.err);
	CHECK(a.err != NULL);
	answer_reset(&a);
	answer_reset(&b);
	xn_qga_close(g);
	fake_stop(&f);
}

typedef struct closer {
	xn_qga *g;
	answer a;
} closer;

static void close_from_callback(void *ud, json_t *ret, json_t *agent_err, const xn_error *err)
{
	closer *c = ud;
	on_answer(&c->a, ret, agent_err, err);
	xn_qga_close(c->g);
	xn_qga_close(c->g); /* twice is harmless */
}

TEST(test_close_inside_a_callback)
{
	XN_AUTOFREE char *path = sock_path("close.sock");
	fake f;
	fake_start(&f, path, true);
	closer c = {.g = xn_qga_new(&loop, path)};
	answer later = {0};
	xn_qga_command(c.g, "guest-ping", NULL, 0, 2000, close_from_callback, &c);
	xn_qga_command(c.g, "hang", NULL, 0, 2000, on_answer, &later);
	wait_for(&c.a.done, 3000);
	CHECK(c.a.ret != NULL);
	CHECK(later.done && later.err && strstr(later.err, "closed"));
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(later.calls == 1);
	answer_reset(&c.a);
	answer_reset(&later);
	fake_stop(&f);
}

int main(void)
{
	uv_loop_init(&loop);
	CHECK(mkdtemp(dir) != NULL);
	RUN(test_no_socket_fails_at_once);
	RUN(test_agent_starting_late);
	RUN(test_silent_agent_bounded);
	RUN(test_answers);
	RUN(test_reconnect);
	RUN(test_close_inside_a_callback);
	xn_rm_rf(dir, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(uv_loop_close(&loop) == 0);
	CHECK_EXIT();
}
