/* cmd_console.c: `xe console vm=<vm>`, the VM's text console in the
 * terminal.
 *
 * The VM's vt100 console record gives a location (`.../console?ref=X`);
 * xe opens a raw connection to the same daemon (libcurl CONNECT_ONLY, so
 * the Unix socket, HTTP and HTTPS all look alike), sends
 * `CONNECT <path>&session_id=S&scrollback=N HTTP/1.0`, and after the 200
 * (console_proto.c) relays bytes both ways with poll(2). On a terminal
 * it switches to raw mode and Ctrl-] detaches; the terminal is restored
 * on every way out, signals included. Without a terminal (scripts), stdin
 * goes to the console, and after stdin ends output is printed for
 * linger= seconds more (a fixed time: a guest that never stops printing
 * must not keep a script waiting forever). */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

#define DETACH_KEY 0x1d /* Ctrl-] */
#define MAX_PENDING (256 * 1024)

struct console {
	CURL *h;
	curl_socket_t fd;
	bool tty, stdin_open;
	long linger_ms;
	uint64_t eof_ms;      /* when stdin ended */
	xn_buf out; /* keystrokes not yet sent */
};

static volatile sig_atomic_t got_signal;
static struct termios saved_tio;
static bool tio_saved;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void tty_raw(void)
{
	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	struct termios raw = saved_tio;
	cfmakeraw(&raw);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
		tio_saved = true;
}

static void tty_restore(void)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	tio_saved = false;
}

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	for (size_t i = 0; i < XN_ARRAY_LEN(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {fd, events, 0};
	int n;
	while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR && !got_signal)
		;
	return n;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- connecting --------------------------------------------------------- */

static const char *vt100_location(xe_ctx *ctx, xe_rec *vm)
{
	size_t i;
	json_t *ref;
	json_array_foreach(json_object_get(vm->json, "consoles"), i, ref) {
		json_t *con = ctx->lk.record(ctx->lk.ctx, "console", json_string_value(ref));
		if (xn_streq(json_string_value(json_object_get(con, "protocol")), "vt100"))
			return json_string_value(json_object_get(con, "location"));
	}
	return NULL;
}

static int open_raw(struct console *c, const xe_conn *conn, xn_error **err)
{
	const xe_target *t = xe_conn_target(conn);
	XN_AUTOFREE char *url = t->socket ? xn_strdup("http://localhost/")
					  : xn_asprintf("%s://%s:%d/", t->tls ? "https" : "http", t->host, t->port);
	c->h = curl_easy_init();
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	if (t->socket)
		curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, t->socket);
	/* Self-signed host certificates, as for the API calls (rpc.c). */
	curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, 0L);
	CURLcode rc = curl_easy_perform(c->h);
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &c->fd);
	if (rc != CURLE_OK)
		return xe_fail(err, "cannot reach %s: %s", xe_conn_where(conn), curl_easy_strerror(rc));
	return 0;
}

static int send_all(struct console *c, const char *p, size_t n, xn_error **err)
{
	while (n) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(c->h, p, n, &sent);
		if (rc == CURLE_AGAIN) {
			if (got_signal || wait_fd(c->fd, POLLOUT, -1) < 0)
				return xe_fail(err, "Error: console: interrupted");
			continue;
		}
		if (rc != CURLE_OK)
			return xe_fail(err, "Error: console: %s", curl_easy_strerror(rc));
		p += sent;
		n -= sent;
	}
	return 0;
}

/* Read the daemon's answer to CONNECT; console bytes that came with it
 * (the scrollback, typically) are kept in *early. */
static int read_answer(struct console *c, xn_buf *early, xn_error **err)
{
	xe_http_resp *r = xe_http_resp_new();
	char buf[8192];
	int rc = 0;
	while (!xe_http_resp_done(r) && rc == 0) {
		size_t n = 0;
		CURLcode cr = curl_easy_recv(c->h, buf, sizeof(buf), &n);
		if (cr == CURLE_AGAIN) {
			if (got_signal || wait_fd(c->fd, POLLIN, 30000) <= 0)
				rc = xe_fail(err, "Error: console: no answer from the daemon");
			continue;
		}
		if (cr != CURLE_OK)
			n = 0;
		ssize_t used = xe_http_resp_feed(r, buf, n);
		if (used < 0)
			rc = xe_fail(err, "Error: console: malformed answer from the daemon");
		else if (xe_http_resp_status(r) == 200 && (size_t)used < n)
			xn_buf_append(early, buf + used, n - (size_t)used);
	}
	if (rc == 0 && xe_http_resp_status(r) != 200)
		rc = xe_fail(err, "Error: console: HTTP %d%s%s", xe_http_resp_status(r),
			     *xe_http_resp_body(r) ? ": " : "", xe_http_resp_body(r));
	xe_http_resp_free(r);
	return rc;
}

/* ---- relaying ------------------------------------------------------------- */

/* Console output to stdout until the socket would block. 1: closed. */
static int drain_console(struct console *c, xn_error **err)
{
	char buf[16384];
	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(c->h, buf, sizeof(buf), &n);
		if (rc == CURLE_AGAIN)
			return 0;
		if (rc != CURLE_OK || n == 0)
			return 1;
		if (write_all(STDOUT_FILENO, buf, n) < 0)
			return 1;
	}
}

static int flush_keys(struct console *c, xn_error **err)
{
	size_t sent = 0;
	CURLcode rc = curl_easy_send(c->h, c->out.data, c->out.len, &sent);
	if (rc != CURLE_OK && rc != CURLE_AGAIN)
		return xe_fail(err, "Error: console: %s", curl_easy_strerror(rc));
	xn_buf_consume(&c->out, sent);
	return 0;
}

/* Keystrokes from stdin. 1: detach (Ctrl-] on a terminal, or EOF). */
static int read_keys(struct console *c)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		c->stdin_open = false;
		c->eof_ms = xn_now_ms();
		return c->tty ? 1 : 0;
	}
	char *esc = c->tty ? memchr(buf, DETACH_KEY, (size_t)n) : NULL;
	xn_buf_append(&c->out, buf, esc ? (size_t)(esc - buf) : (size_t)n);
	return esc ? 1 : 0;
}

/* How long poll may sleep: forever, or what is left of the linger. */
static int poll_timeout(const struct console *c)
{
	if (c->tty || c->stdin_open || c->out.len)
		return -1;
	int64_t left = (int64_t)c->linger_ms - (int64_t)(xn_now_ms() - c->eof_ms);
	return left > 0 ? (int)left : 0;
}

static int relay(struct console *c, xn_error **err)
{
	for (;;) {
		if (got_signal)
			return xe_fail(err, "Error: console: interrupted by signal %d", (int)got_signal);
		struct pollfd p[2] = {
			{c->fd, (short)(POLLIN | (c->out.len ? POLLOUT : 0)), 0},
			{c->stdin_open && c->out.len < MAX_PENDING ? STDIN_FILENO : -1, POLLIN, 0},
		};
		int timeout = poll_timeout(c);
		int n = timeout == 0 ? 0 : poll(p, 2, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return xe_fail(err, "Error: console: poll: %s", strerror(errno));
		if (n == 0)
			return 0; /* linger= seconds after stdin ended */
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && drain_console(c, err))
			return 0; /* the daemon closed the console */
		if ((p[0].revents & POLLOUT) && flush_keys(c, err) < 0)
			return -1;
		if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && read_keys(c)) {
			flush_keys(c, err);
			return 0;
		}
	}
}

static int attach(xe_ctx *ctx, struct console *c, const char *path, xn_error **err)
{
	const xe_args *a = ctx->args;
	const char *sb = xe_arg(a, "scrollback");
	const char *linger = xe_arg(a, "linger");
	c->tty = isatty(STDIN_FILENO);
	c->stdin_open = true;
	c->linger_ms = linger ? (long)(strtod(linger, NULL) * 1000) : 1000;
	long scrollback = sb ? strtol(sb, NULL, 10) : c->tty ? 4096 : 0;
	XN_AUTOFREE char *req = xe_console_request(path, xe_conn_session(ctx->conn), scrollback);
	catch_signals();
	if (open_raw(c, ctx->conn, err) < 0 || send_all(c, req, strlen(req), err) < 0)
		return -1;
	c->eof_ms = xn_now_ms();
	xn_buf early = {0};
	int rc = read_answer(c, &early, err);
	if (rc == 0 && c->tty) {
		fputs("[attached; press Ctrl-] to detach]\r\n", stderr);
		tty_raw();
	}
	if (rc == 0 && early.len)
		write_all(STDOUT_FILENO, early.data, early.len);
	xn_buf_reset(&early);
	if (rc == 0)
		rc = relay(c, err);
	tty_restore();
	if (c->tty)
		fputs("\n", stderr);
	return rc;
}

int xe_cmd_console(xe_ctx *ctx, xn_error **err)
{
	xe_rec **vms = xe_select(ctx, xe_class_spec_find("vm"), "is-control-domain=false", err);
	if (!vms)
		return -1;
	int rc = -1;
	const char *loc = vt100_location(ctx, vms[0]);
	XN_AUTOFREE char *path = NULL;
	if (vms[1])
		xe_fail(err, "Error: console attaches to one VM; select a single VM");
	else if (!loc)
		xe_fail(err, "Error: VM '%s' has no text console (is it running?)",
			json_string_value(json_object_get(vms[0]->json, "name_label")));
	else if ((path = xe_console_path(loc, err))) {
		struct console c = {0};
		rc = attach(ctx, &c, path, err);
		if (c.h)
			curl_easy_cleanup(c.h);
		xn_buf_reset(&c.out);
	}
	xe_recs_free(vms);
	return rc;
}
