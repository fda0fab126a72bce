/* Tests of the QMP client (engine/qmp.h, engine/qmp_commands.h) against
 * a real QEMU (`-machine none`, started a little after the client begins
 * connecting, so the retry is exercised) and against a scripted fake
 * server in the same loop for what QEMU never does on demand: greetings
 * split across reads, several messages in one read, a long line, a peer
 * that closes mid-message. Every wait is bounded by a timer. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "uvwait.h"
#include "engine/qemu_proc.h"
#include "engine/qmp.h"
#include "engine/qmp_commands.h"
#include "util/fs.h"

static char dir[] = "/tmp/xn-test-qmp-XXXXXX";

/* ---- a session's observations ---- */

typedef struct session {
	xn_qmp *q;
	bool ready, ready_failed, closed;
	char *ready_err;
	int events;
	char *last_event;
	bool migrated;       /* a MIGRATION event said completed or failed */
	char *mig_status;
} session;

static void on_ready(void *ud, const xn_error *err)
{
	session *s = ud;
	s->ready = true;
	s->ready_failed = err != NULL;
	if (err)
		s->ready_err = xn_strdup(err->message);
}

static void on_event(void *ud, const char *name, json_t *data)
{
	session *s = ud;
	s->events++;
	free(s->last_event);
	s->last_event = xn_strdup(name);
	const char *st = json_string_value(json_object_get(data, "status"));
	if (xn_streq(name, "MIGRATION") && (xn_streq(st, "completed") || xn_streq(st, "failed"))) {
		s->migrated = true;
		free(s->mig_status);
		s->mig_status = xn_strdup(st);
	}
}

static void on_closed(void *ud)
{
	session *s = ud;
	CHECK(!s->closed);
	s->closed = true;
}

static void session_open(session *s, const char *path, uint64_t timeout_ms)
{
	memset(s, 0, sizeof(*s));
	struct xn_qmp_callbacks cb = {on_ready, on_event, on_closed, s};
	s->q = xn_qmp_connect(&loop, path, timeout_ms, &cb);
}

static void session_free(session *s)
{
	xn_qmp_close(s->q);
	uv_run(&loop, UV_RUN_NOWAIT); /* let the handles close */
	free(s->ready_err);
	free(s->last_event);
	free(s->mig_status);
}

/* ---- QEMU ---- */

typedef struct qemu {
	xn_qemu_proc *proc;
	pid_t pid;
	bool exited;
	int64_t status;
	char *sock;
} qemu;

static void on_qemu_exit(void *ud, int64_t status, int sig)
{
	qemu *m = ud;
	m->exited = true;
	m->status = sig ? -sig : status;
}

/* QEMU with no machine, paused, QMP on m->sock; incoming_fd >= 0 makes
 * it load a saved state from that fd (passed as its fd 3). */
static void qemu_start_incoming(qemu *m, int incoming_fd)
{
	char *argv[] = {"qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display",
			"none", "-S", "-chardev", NULL, "-mon", "chardev=qmp,mode=control",
			incoming_fd >= 0 ? "-incoming" : NULL, "fd:3", NULL};
	XN_AUTOFREE char *chardev =
		xn_asprintf("socket,id=qmp,path=%s,server=on,wait=off", m->sock);
	argv[8] = chardev;
	XN_AUTOFREE char *log = xn_asprintf("%s/qemu.log", dir);
	xn_qemu_fd fds[] = {{incoming_fd, 3}};
	xn_qemu_spawn_opts o = {.argv = argv, .log_path = log, .fds = fds,
				.nfds = incoming_fd >= 0, .on_exit = on_qemu_exit, .ud = m};
	XN_AUTOERR xn_error *err = NULL;
	m->proc = xn_qemu_spawn(&loop, &o, &err);
	CHECK(m->proc != NULL);
	m->pid = m->proc ? xn_qemu_proc_pid(m->proc) : 0;
}

static void qemu_start(qemu *m)
{
	qemu_start_incoming(m, -1);
}

static void start_later(uv_timer_t *t)
{
	qemu_start(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

/* Stop a QEMU that the test did not make quit. */
static void qemu_end(qemu *m)
{
	if (m->proc && !m->exited) {
		xn_qemu_proc_kill(m->pid, NULL);
		wait_for(&m->exited, 5000);
	}
	free(m->sock);
}

/* ---- reply recording ---- */

typedef struct reply {
	bool done;
	char *err;         /* error message, or NULL */
	char *status;      /* query-status */
	int order;         /* position among answered replies */
} reply;

static int answered;

static void on_done(void *ud, const xn_error *err)
{
	reply *r = ud;
	r->done = true;
	r->order = answered++;
	r->err = err ? xn_strdup(err->message) : NULL;
}

static void on_status(void *ud, const char *status, bool running, const xn_error *err)
{
	reply *r = ud;
	on_done(ud, err);
	r->status = xn_strdup(status);
}

static void reply_reset(reply *r)
{
	free(r->err);
	free(r->status);
	memset(r, 0, sizeof(*r));
}

static char *query_status(xn_qmp *q)
{
	reply r = {0};
	xn_qmp_query_status(q, on_status, &r);
	wait_for(&r.done, 5000);
	CHECK(r.err == NULL);
	free(r.err);
	return r.status;
}

/* Whether process pid has file open (one of /proc/PID/fd links to it). */
static bool qemu_has_open(pid_t pid, const char *file)
{
	XN_AUTOFREE char *fddir = xn_asprintf("/proc/%d/fd", (int)pid);
	DIR *d = opendir(fddir);
	bool found = false;
	for (struct dirent *e; d && (e = readdir(d)) && !found;) {
		char target[4096];
		XN_AUTOFREE char *link = xn_asprintf("%s/%s", fddir, e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = strcmp(target, file) == 0;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* ---- tests against QEMU ---- */

TEST(test_connect_retry_status_stop_cont)
{
	qemu m = {.sock = xn_asprintf("%s/a.sock", dir)};
	session s;
	session_open(&s, m.sock, 10000);
	uv_timer_t later;
	uv_timer_init(&loop, &later);
	later.data = &m;
	uv_timer_start(&later, start_later, 150, 0);
	/* Queued before the session is ready: sent once it is. */
	reply first = {0};
	xn_qmp_query_status(s.q, on_status, &first);
	if (wait_for(&s.ready, 10000)) {
		CHECK(!s.ready_failed);
		wait_for(&first.done, 5000);
		CHECK_STR(first.status, "prelaunch");
		reply r = {0};
		xn_qmp_stop(s.q, on_done, &r);
		wait_for(&r.done, 5000);
		CHECK(r.err == NULL);
		XN_AUTOFREE char *st = query_status(s.q);
		CHECK_STR(st, "prelaunch");
		reply_reset(&r);
		xn_qmp_cont(s.q, on_done, &r);
		wait_for(&r.done, 5000);
		CHECK(r.err == NULL);
		XN_AUTOFREE char *st2 = query_status(s.q);
		CHECK_STR(st2, "running");
		reply_reset(&r);
		xn_qmp_stop(s.q, on_done, &r);
		wait_for(&r.done, 5000);
		XN_AUTOFREE char *st3 = query_status(s.q);
		CHECK_STR(st3, "paused");
		CHECK(s.events >= 2); /* RESUME, STOP */
		reply_reset(&r);
	}
	reply_reset(&first);
	session_free(&s);
	qemu_end(&m);
}

static void on_raw(void *ud, json_t *ret, const xn_error *err)
{
	on_done(ud, err);
	CHECK((ret == NULL) == (err != NULL));
}

TEST(test_errors_fds_order_quit)
{
	qemu m = {.sock = xn_asprintf("%s/b.sock", dir)};
	qemu_start(&m);
	session s;
	session_open(&s, m.sock, 10000);
	if (!wait_for(&s.ready, 10000) || s.ready_failed) {
		session_free(&s);
		qemu_end(&m);
		return;
	}
	/* An unknown command: QEMU's description, and the session goes on. */
	reply r = {0};
	xn_qmp_command(s.q, "no-such-command", NULL, on_raw, &r);
	wait_for(&r.done, 5000);
	CHECK(r.err && strstr(r.err, "'no-such-command'") &&
	      strstr(r.err, "The command no-such-command has not been found"));
	reply_reset(&r);

	/* getfd: QEMU holds the file open; closefd: it no longer does. */
	XN_AUTOFREE char *file = xn_asprintf("%s/state.bin", dir);
	XN_AUTOCLOSE int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	xn_qmp_getfd(s.q, fd, "state0", on_done, &r);
	wait_for(&r.done, 5000);
	CHECK(r.err == NULL);
	CHECK(qemu_has_open(m.pid, file));
	reply_reset(&r);
	xn_qmp_closefd(s.q, "state0", on_done, &r);
	wait_for(&r.done, 5000);
	CHECK(r.err == NULL);
	CHECK(!qemu_has_open(m.pid, file));
	reply_reset(&r);
	xn_qmp_closefd(s.q, "state0", on_done, &r);
	wait_for(&r.done, 5000);
	CHECK(r.err && strstr(r.err, "not found"));
	reply_reset(&r);

	/* Many at once, answered in order, a getfd in the middle. */
	enum { N = 200 };
	static reply many[N];
	answered = 0;
	for (int i = 0; i < N; i++) {
		if (i == N / 2)
			xn_qmp_getfd(s.q, fd, "mid", on_done, &many[i]);
		else if (i % 3 == 0)
			xn_qmp_query_status(s.q, on_status, &many[i]);
		else
			xn_qmp_command(s.q, i % 3 == 1 ? "query-version" : "nope", NULL, on_raw,
				       &many[i]);
	}
	wait_for(&many[N - 1].done, 20000);
	for (int i = 0; i < N; i++) {
		CHECK(many[i].done && many[i].order == i);
		CHECK((many[i].err != NULL) == (i % 3 == 2 && i != N / 2));
		reply_reset(&many[i]);
	}

	/* quit: the reply, then closed, then the process exits. */
	xn_qmp_quit(s.q, on_done, &r);
	wait_for(&s.closed, 5000);
	CHECK(r.done && r.err == NULL);
	wait_for(&m.exited, 5000);
	CHECK(m.status == 0);
	reply_reset(&r);
	/* After the end, commands fail from the loop, not inside the call. */
	xn_qmp_cont(s.q, on_done, &r);
	CHECK(!r.done);
	wait_for(&r.done, 1000);
	CHECK(r.err != NULL);
	reply_reset(&r);
	session_free(&s);
	qemu_end(&m);
}

static void on_migrate_info(void *ud, const xn_qmp_migrate_info *info, const xn_error *err)
{
	reply *r = ud;
	on_done(ud, err);
	r->status = info ? xn_strdup(info->status) : NULL;
}

static void sleep_ms(uint64_t ms)
{
	bool never = false;
	wait_for_quietly(&never, ms);
}

/* The suspend/resume plumbing: save a QEMU's state to a file through
 * getfd + migrate fd:, then start another with -incoming fd:3 on it. */
TEST(test_migrate_to_fd_and_back)
{
	qemu a = {.sock = xn_asprintf("%s/mig-a.sock", dir)};
	qemu_start(&a);
	session s;
	session_open(&s, a.sock, 10000);
	XN_AUTOFREE char *file = xn_asprintf("%s/saved.state", dir);
	XN_AUTOCLOSE int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	reply r[6] = {{0}};
	xn_qmp_query_migrate(s.q, on_migrate_info, &r[0]);
	xn_qmp_migrate_set_capability(s.q, "events", true, on_done, &r[1]);
	xn_qmp_migrate_set_parameters(s.q, 64ull << 30, 300, on_done, &r[2]);
	xn_qmp_getfd(s.q, fd, "state", on_done, &r[3]);
	xn_qmp_migrate(s.q, "fd:state", on_done, &r[4]);
	wait_for(&s.migrated, 10000);
	/* The completion event comes from QEMU's migration thread and may
	 * overtake the reply to `migrate`: wait for both. */
	wait_for(&r[4].done, 5000);
	CHECK_STR(s.mig_status, "completed");
	CHECK_STR(r[0].status, "none");
	for (int i = 0; i < 5; i++)
		CHECK(r[i].done && r[i].err == NULL);
	xn_qmp_query_migrate(s.q, on_migrate_info, &r[5]);
	wait_for(&r[5].done, 5000);
	CHECK_STR(r[5].status, "completed");
	XN_AUTOFREE char *st = query_status(s.q);
	CHECK_STR(st, "postmigrate");
	xn_qmp_quit(s.q, NULL, NULL);
	wait_for(&a.exited, 5000);
	session_free(&s);
	for (int i = 0; i < 6; i++)
		reply_reset(&r[i]);
	struct stat sb;
	CHECK(stat(file, &sb) == 0 && sb.st_size > 0);

	qemu b = {.sock = xn_asprintf("%s/mig-b.sock", dir)};
	XN_AUTOCLOSE int in = open(file, O_RDONLY | O_CLOEXEC);
	qemu_start_incoming(&b, in);
	session_open(&s, b.sock, 10000);
	XN_AUTOFREE char *bst = NULL;
	for (int i = 0; i < 100; i++) {
		free(bst);
		bst = query_status(s.q);
		if (!xn_streq(bst, "inmigrate"))
			break;
		sleep_ms(20);
	}
	CHECK_STR(bst, "prelaunch");
	xn_qmp_query_migrate(s.q, on_migrate_info, &r[0]);
	wait_for(&r[0].done, 5000);
	CHECK_STR(r[0].status, "completed");
	reply_reset(&r[0]);
	session_free(&s);
	qemu_end(&a);
	qemu_end(&b);
}

TEST(test_socket_never_appears)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/never.sock", dir);
	session s;
	uint64_t t0 = xn_now_ms();
	session_open(&s, path, 300);
	reply r = {0};
	xn_qmp_cont(s.q, on_done, &r);
	wait_for(&s.ready, 5000);
	uint64_t took = xn_now_ms() - t0;
	CHECK(s.ready_failed && took >= 300 && took < 2000);
	CHECK(s.ready_err && strstr(s.ready_err, path) && strstr(s.ready_err, "timed out"));
	CHECK(r.done && r.err != NULL); /* failed before ready(err) */
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(!s.closed);
	reply_reset(&r);
	session_free(&s);
}

/* ---- a scripted fake QMP server ---- */

typedef struct fake {
	uv_pipe_t server, client;
	uv_timer_t timer;
	bool connected;
	xn_buf in;
	int requests;
} fake;

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"

static void fake_written(uv_write_t *w, int status)
{
	free(w);
}

static void fake_write(fake *f, const char *data, size_t len)
{
	uv_write_t *w = xn_malloc(sizeof(*w) + len);
	memcpy(w + 1, data, len);
	uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned int)len);
	uv_write(w, (uv_stream_t *)&f->client, &b, 1, fake_written);
}

static void fake_reply(fake *f, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "execute"));
	json_int_t id = json_integer_value(json_object_get(req, "id"));
	XN_AUTOFREE char *out = NULL;
	f->requests++;
	if (xn_streq(cmd, "two")) {
		out = xn_asprintf("{\"event\": \"E1\", \"data\": {\"a\": 1}}\r\n"
				  "{\"return\": {\"n\": 2}, \"id\": %lld}\r\n{\"event\": \"E2\"}\r\n",
				  (long long)id);
	} else if (xn_streq(cmd, "big")) {
		size_t n = 2u << 20;
		XN_AUTOFREE char *x = xn_malloc(n + 1);
		memset(x, 'x', n);
		x[n] = '\0';
		out = xn_asprintf("{\"return\": {\"s\": \"%s\"}, \"id\": %lld}\r\n", x, (long long)id);
	} else if (xn_streq(cmd, "die")) {
		fake_write(f, "{\"return\": {}, \"i", 17);
		uv_close((uv_handle_t *)&f->client, NULL);
		f->connected = false;
		return;
	} else if (xn_streq(cmd, "wrongid")) {
		out = xn_asprintf("{\"return\": {\"v\": \"stale\"}, \"id\": 999999}\r\n"
				  "{\"return\": {\"v\": \"right\"}, \"id\": %lld}\r\n",
				  (long long)id);
	} else if (xn_streq(cmd, "hang")) {
		return;
	} else {
		out = xn_asprintf("{\"return\": {}, \"id\": %lld}\r\n", (long long)id);
	}
	fake_write(f, out, strlen(out));
}

static void fake_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	*b = uv_buf_init(xn_malloc(n), (unsigned int)n);
}

static void fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	fake *f = st->data;
	if (n > 0)
		xn_buf_append(&f->in, b->base, (size_t)n);
	free(b->base);
	char *nl;
	while (f->connected && f->in.data && (nl = strchr(f->in.data, '\n'))) {
		json_t *req = json_loadb(f->in.data, (size_t)(nl - f->in.data), 0, NULL);
		xn_buf_consume(&f->in, (size_t)(nl - f->in.data) + 1);
		CHECK(req != NULL);
		if (req)
			fake_reply(f, req);
		json_decref(req);
	}
}

static void fake_rest_of_greeting(uv_timer_t *t)
{
	fake *f = t->data;
	if (f->connected)
		fake_write(f, GREETING + 10, strlen(GREETING) - 10);
}

static void fake_accept(uv_stream_t *server, int status)
{
	fake *f = server->data;
	uv_pipe_init(&loop, &f->client, 0);
	f->client.data = f;
	CHECK(uv_accept(server, (uv_stream_t *)&f->client) == 0);
	f->connected = true;
	uv_read_start((uv_stream_t *)&f->client, fake_alloc, fake_read);
	/* The greeting in two reads, 30 ms apart. */
	fake_write(f, GREETING, 10);
	uv_timer_start(&f->timer, fake_rest_of_greeting, 30, 0);
}

static void fake_start(fake *f, const char *path)
{
	memset(f, 0, sizeof(*f));
	uv_pipe_init(&loop, &f->server, 0);
	f->server.data = f;
	uv_timer_init(&loop, &f->timer);
	f->timer.data = f;
	CHECK(uv_pipe_bind(&f->server, path) == 0);
	CHECK(uv_listen((uv_stream_t *)&f->server, 4, fake_accept) == 0);
}

static void fake_stop(fake *f)
{
	if (f->connected)
		uv_close((uv_handle_t *)&f->client, NULL);
	uv_close((uv_handle_t *)&f->server, NULL);
	uv_close((uv_handle_t *)&f->timer, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	xn_buf_reset(&f->in);
}

typedef struct big_reply {
	bool done;
	size_t len;
	char *value;
} big_reply;

static void on_value(void *ud, json_t *ret, const xn_error *err)
{
	big_reply *b = ud;
	b->done = true;
	b->value = xn_strdup(json_string_value(json_object_get(ret, "v")));
}

static void on_big(void *ud, json_t *ret, const xn_error *err)
{
	big_reply *b = ud;
	b->done = true;
	b->len = strlen(json_string_value(json_object_get(ret, "s")) ?: "");
}

TEST(test_fake_split_batched_long_truncated)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/fake1.sock", dir);
	fake f;
	fake_start(&f, path);
	session s;
	session_open(&s, path, 5000);
	wait_for(&s.ready, 5000);
	CHECK(!s.ready_failed);
	reply r = {0};
	xn_qmp_command(s.q, "two", NULL, on_raw, &r);
	wait_for(&r.done, 5000);
	CHECK(r.err == NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(s.events == 2 && xn_streq(s.last_event, "E2"));
	reply_reset(&r);
	/* A reply with another id is not this command's. */
	big_reply v = {0};
	xn_qmp_command(s.q, "wrongid", NULL, on_value, &v);
	wait_for(&v.done, 5000);
	CHECK_STR(v.value, "right");
	free(v.value);
	big_reply b = {0};
	xn_qmp_command(s.q, "big", NULL, on_big, &b);
	wait_for(&b.done, 5000);
	CHECK(b.len == 2u << 20);
	/* The peer dies mid-message: both commands fail, then closed. */
	reply die = {0}, after = {0};
	xn_qmp_command(s.q, "die", NULL, on_raw, &die);
	xn_qmp_command(s.q, "after", NULL, on_raw, &after);
	wait_for(&s.closed, 5000);
	CHECK(die.done && die.err && after.done && after.err);
	CHECK(f.requests == 5); /* capabilities, two, wrongid, big, die; not "after" */
	reply_reset(&die);
	reply_reset(&after);
	session_free(&s);
	fake_stop(&f);
}

/* A reply callback that closes the session it came from; closed must
 * have been delivered by the time xn_qmp_close returns. */
static bool closed_when_close_returned;
static void close_in_callback(void *ud, json_t *ret, const xn_error *err)
{
	session *s = ud;
	xn_qmp_close(s->q);
	closed_when_close_returned = s->closed;
}

TEST(test_close_with_pending_and_from_callback)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/fake2.sock", dir);
	fake f;
	fake_start(&f, path);
	session s;
	session_open(&s, path, 5000);
	wait_for(&s.ready, 5000);
	/* xn_qmp_close: pending callbacks and closed, all before it returns. */
	reply a = {0}, b = {0};
	xn_qmp_command(s.q, "hang", NULL, on_raw, &a);
	xn_qmp_command(s.q, "query-x", NULL, on_raw, &b);
	uv_run(&loop, UV_RUN_NOWAIT);
	xn_qmp_close(s.q);
	CHECK(a.done && a.err && b.done && b.err && s.closed);
	reply_reset(&a);
	reply_reset(&b);
	uv_run(&loop, UV_RUN_NOWAIT);
	fake_stop(&f);

	/* Closing from inside a reply callback: the rest fails at once, the
	 * event that followed the reply in the same read is not delivered. */
	XN_AUTOFREE char *path2 = xn_asprintf("%s/fake3.sock", dir);
	fake_start(&f, path2);
	session s2;
	session_open(&s2, path2, 5000);
	wait_for(&s2.ready, 5000);
	xn_qmp_command(s2.q, "two", NULL, close_in_callback, &s2);
	xn_qmp_command(s2.q, "next", NULL, on_raw, &a);
	wait_for(&s2.closed, 5000);
	CHECK(a.done && a.err);
	CHECK(s2.events == 1); /* E1 only */
	CHECK(closed_when_close_returned);
	reply_reset(&a);
	uv_run(&loop, UV_RUN_NOWAIT);
	free(s2.ready_err);
	free(s2.last_event);
	fake_stop(&f);

	/* The same from the error callback of a command that the peer's death
	 * fails: the session is already ending when xn_qmp_close comes. */
	XN_AUTOFREE char *path3 = xn_asprintf("%s/fake4.sock", dir);
	fake_start(&f, path3);
	session s3;
	session_open(&s3, path3, 5000);
	wait_for(&s3.ready, 5000);
	closed_when_close_returned = false;
	xn_qmp_command(s3.q, "die", NULL, close_in_callback, &s3);
	wait_for(&s3.closed, 5000);
	CHECK(closed_when_close_returned);
	uv_run(&loop, UV_RUN_NOWAIT);
	free(s3.ready_err);
	free(s3.last_event);
	fake_stop(&f);
}

/* Recorded shapes of x-debug-query-block-graph and query-named-block-nodes
 * after a snapshot of a running disk: ov-1 (new top) over drive-0 (the
 * old image, c.qcow2) over the template's image t.qcow2. */
TEST(test_chain_around)
{
	json_t *graph = json_loads(
		"{\"nodes\":[{\"id\":1,\"type\":\"block-backend\",\"name\":\"\"},"
		"{\"id\":2,\"type\":\"block-driver\",\"name\":\"ov-1\"},"
		"{\"id\":3,\"type\":\"block-driver\",\"name\":\"#block838\"},"
		"{\"id\":4,\"type\":\"block-driver\",\"name\":\"drive-0\"},"
		"{\"id\":5,\"type\":\"block-driver\",\"name\":\"file-0\"},"
		"{\"id\":6,\"type\":\"block-driver\",\"name\":\"#block524\"},"
		"{\"id\":7,\"type\":\"block-driver\",\"name\":\"#block492\"}],"
		"\"edges\":[{\"parent\":1,\"child\":2,\"name\":\"root\"},"
		"{\"parent\":2,\"child\":3,\"name\":\"file\"},"
		"{\"parent\":2,\"child\":4,\"name\":\"backing\"},"
		"{\"parent\":4,\"child\":5,\"name\":\"file\"},"
		"{\"parent\":4,\"child\":6,\"name\":\"backing\"},"
		"{\"parent\":6,\"child\":7,\"name\":\"file\"}]}", 0, NULL);
	json_t *named = json_loads(
		"[{\"node-name\":\"ov-1\",\"drv\":\"qcow2\",\"file\":\"json:{}\"},"
		"{\"node-name\":\"#block838\",\"drv\":\"file\",\"file\":\"/sr/n.qcow2\"},"
		"{\"node-name\":\"drive-0\",\"drv\":\"qcow2\",\"file\":\"json:{}\"},"
		"{\"node-name\":\"file-0\",\"drv\":\"file\",\"file\":\"/sr/c.qcow2\"},"
		"{\"node-name\":\"#block524\",\"drv\":\"qcow2\",\"file\":\"/sr/t.qcow2\"},"
		"{\"node-name\":\"#block492\",\"drv\":\"file\",\"file\":\"/sr/t.qcow2\"}]",
		0, NULL);
	const char *above = NULL, *base = NULL, *below = NULL;
	CHECK(xn_qmp_chain_around(graph, named, "c.qcow2", &above, &base, &below));
	CHECK_STR(above, "ov-1");
	CHECK_STR(base, "drive-0");
	CHECK_STR(below, "#block524");
	/* the bottom of the chain has nothing below it */
	CHECK(xn_qmp_chain_around(graph, named, "t.qcow2", &above, &base, &below));
	CHECK_STR(above, "drive-0");
	CHECK(below == NULL);
	/* the top has nothing above it; names match whole file names only */
	CHECK(!xn_qmp_chain_around(graph, named, "n.qcow2", &above, &base, &below));
	CHECK(!xn_qmp_chain_around(graph, named, "c.qcow2x", &above, &base, &below));
	CHECK(!xn_qmp_chain_around(graph, named, "t.qcow", &above, &base, &below));
	json_decref(graph);
	json_decref(named);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_connect_retry_status_stop_cont);
	RUN(test_errors_fds_order_quit);
	RUN(test_migrate_to_fd_and_back);
	RUN(test_socket_never_appears);
	RUN(test_fake_split_batched_long_truncated);
	RUN(test_close_with_pending_and_from_callback);
	RUN(test_chain_around);
	xn_rm_rf(dir, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(uv_loop_close(&loop) == 0);
	CHECK_EXIT();
}
