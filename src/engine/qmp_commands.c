/* qmp_commands.c: typed QMP command wrappers (qmp_commands.h).
 *
 * Each wrapper builds the arguments, queues the command with a small
 * context holding the typed callback, and converts the reply. */
#include "engine/qmp_commands.h"

#include <stdlib.h>

/* The caller's typed callback, carried through the generic reply. */
typedef struct reply_ctx {
	union {
		xn_qmp_done_fn done;
		xn_qmp_status_fn status;
		xn_qmp_migrate_fn migrate;
	} fn;
	void *ud;
} reply_ctx;

static reply_ctx *ctx_new(void *ud)
{
	reply_ctx *c = xn_calloc(1, sizeof(*c));
	c->ud = ud;
	return c;
}

static void done_reply(void *ud, json_t *ret, const xn_error *err)
{
	reply_ctx *c = ud;
	if (c->fn.done)
		c->fn.done(c->ud, err);
	free(c);
}

static void run(xn_qmp *q, const char *name, json_t *args, xn_qmp_done_fn fn, void *ud)
{
	reply_ctx *c = ctx_new(ud);
	c->fn.done = fn;
	xn_qmp_command(q, name, args, done_reply, c);
}

void xn_qmp_cont(xn_qmp *q, xn_qmp_done_fn fn, void *ud)
{
	run(q, "cont", NULL, fn, ud);
}

void xn_qmp_stop(xn_qmp *q, xn_qmp_done_fn fn, void *ud)
{
	run(q, "stop", NULL, fn, ud);
}

void xn_qmp_system_powerdown(xn_qmp *q, xn_qmp_done_fn fn, void *ud)
{
	run(q, "system_powerdown", NULL, fn, ud);
}

void xn_qmp_system_reset(xn_qmp *q, xn_qmp_done_fn fn, void *ud)
{
	run(q, "system_reset", NULL, fn, ud);
}

void xn_qmp_quit(xn_qmp *q, xn_qmp_done_fn fn, void *ud)
{
	run(q, "quit", NULL, fn, ud);
}

static void status_reply(void *ud, json_t *ret, const xn_error *err)
{
	reply_ctx *c = ud;
	const char *status = json_string_value(json_object_get(ret, "status"));
	XN_AUTOERR xn_error *bad = NULL;
	if (!err && !status)
		xn_fail_internal(&bad, "QMP command 'query-status' failed: no status in the reply");
	if (c->fn.status)
		c->fn.status(c->ud, err || bad ? NULL : status,
		   json_is_true(json_object_get(ret, "running")), err ? err : bad);
	free(c);
}

void xn_qmp_query_status(xn_qmp *q, xn_qmp_status_fn fn, void *ud)
{
	reply_ctx *c = ctx_new(ud);
	c->fn.status = fn;
	xn_qmp_command(q, "query-status", NULL, status_reply, c);
}

void xn_qmp_migrate_set_capability(xn_qmp *q, const char *capability, bool on,
				   xn_qmp_done_fn fn, void *ud)
{
	json_t *args = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", capability,
				 "state", on);
	run(q, "migrate-set-capabilities", args, fn, ud);
}

void xn_qmp_migrate_set_parameters(xn_qmp *q, uint64_t max_bandwidth,
				   uint64_t downtime_limit_ms, xn_qmp_done_fn fn, void *ud)
{
	json_t *args = json_pack("{s:I, s:I}", "max-bandwidth", (json_int_t)max_bandwidth,
				 "downtime-limit", (json_int_t)downtime_limit_ms);
	run(q, "migrate-set-parameters", args, fn, ud);
}

void xn_qmp_migrate(xn_qmp *q, const char *uri, xn_qmp_done_fn fn, void *ud)
{
	run(q, "migrate", json_pack("{s:s}", "uri", uri), fn, ud);
}

static int64_t int_or(json_t *obj, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void migrate_reply(void *ud, json_t *ret, const xn_error *err)
{
	reply_ctx *c = ud;
	json_t *ram = json_object_get(ret, "ram");
	const char *status = json_string_value(json_object_get(ret, "status"));
	xn_qmp_migrate_info info = {
		.status = status ? status : "none", /* QEMU omits it before any migration */
		.ram_transferred = (uint64_t)int_or(ram, "transferred", 0),
		.ram_remaining = (uint64_t)int_or(ram, "remaining", 0),
		.ram_total = (uint64_t)int_or(ram, "total", 0),
		.total_time_ms = int_or(ret, "total-time", -1),
		.downtime_ms = int_or(ret, "downtime", -1),
		.error_desc = json_string_value(json_object_get(ret, "error-desc")),
	};
	if (c->fn.migrate)
		c->fn.migrate(c->ud, err ? NULL : &info, err);
	free(c);
}

void xn_qmp_query_migrate(xn_qmp *q, xn_qmp_migrate_fn fn, void *ud)
{
	reply_ctx *c = ctx_new(ud);
	c->fn.migrate = fn;
	xn_qmp_command(q, "query-migrate", NULL, migrate_reply, c);
}

void xn_qmp_getfd(xn_qmp *q, int fd, const char *fdname, xn_qmp_done_fn fn, void *ud)
{
	reply_ctx *c = ctx_new(ud);
	c->fn.done = fn;
	xn_qmp_send_fd(q, fd, fdname, done_reply, c);
}

void xn_qmp_closefd(xn_qmp *q, const char *fdname, xn_qmp_done_fn fn, void *ud)
{
	run(q, "closefd", json_pack("{s:s}", "fdname", fdname), fn, ud);
}
