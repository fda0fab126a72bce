/* qmp_commands.c: typed QMP command wrappers (qmp_commands.h).
 *
 * Each wrapper builds the arguments, queues the command with a small
 * context holding the typed callback, and converts the reply. */
#include "engine/qmp_commands.h"

#include <stdlib.h>
#include <string.h>

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

/* ---- reading replies --------------------------------------------------- */

/* query-block names a device by its qdev id, or by its QOM path when the
 * block backend belongs to an inner device without an id (virtio-blk-pci
 * "vbd-0" shows as "/machine/peripheral/vbd-0/virtio-backend"). */
static bool qdev_is(const char *qdev, const char *id)
{
	static const char prefix[] = "/machine/peripheral/";
	if (!qdev)
		return false;
	if (strcmp(qdev, id) == 0)
		return true;
	if (strncmp(qdev, prefix, sizeof(prefix) - 1) != 0)
		return false;
	qdev += sizeof(prefix) - 1;
	size_t n = strlen(id);
	return strncmp(qdev, id, n) == 0 && (qdev[n] == '\0' || qdev[n] == '/');
}

const char *xn_qmp_block_node_of(json_t *query_block, const char *id)
{
	size_t i;
	json_t *b;
	json_array_foreach(query_block, i, b) {
		if (!qdev_is(json_string_value(json_object_get(b, "qdev")), id))
			continue;
		return json_string_value(
			json_object_get(json_object_get(b, "inserted"), "node-name"));
	}
	return NULL;
}

json_t *xn_qmp_block_inserted_of(json_t *query_block, const char *id)
{
	size_t i;
	json_t *b;
	json_array_foreach(query_block, i, b)
		if (qdev_is(json_string_value(json_object_get(b, "qdev")), id))
			return json_object_get(b, "inserted");
	return NULL;
}

/* The device with qdev id `id` among a bus's devices, recursively. */
static json_t *pci_find(json_t *devices, const char *id)
{
	size_t i;
	json_t *dev;
	json_array_foreach(devices, i, dev) {
		if (xn_streq(json_string_value(json_object_get(dev, "qdev_id")), id))
			return dev;
		json_t *below = json_object_get(json_object_get(dev, "pci_bridge"), "devices");
		json_t *hit = below ? pci_find(below, id) : NULL;
		if (hit)
			return hit;
	}
	return NULL;
}

bool xn_qmp_pci_port_free(json_t *query_pci, const char *id)
{
	size_t i;
	json_t *bus;
	json_array_foreach(query_pci, i, bus) {
		json_t *dev = pci_find(json_object_get(bus, "devices"), id);
		json_t *bridge = dev ? json_object_get(dev, "pci_bridge") : NULL;
		if (dev)
			return bridge && json_array_size(json_object_get(bridge, "devices")) == 0;
	}
	return false;
}

static json_int_t graph_id(json_t *nodes, const char *name)
{
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n)
		if (xn_streq(json_string_value(json_object_get(n, "type")), "block-driver") &&
		    xn_streq(json_string_value(json_object_get(n, "name")), name))
			return json_integer_value(json_object_get(n, "id"));
	return -1;
}

static const char *graph_name(json_t *nodes, json_int_t id)
{
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n)
		if (json_integer_value(json_object_get(n, "id")) == id)
			return json_string_value(json_object_get(n, "name"));
	return NULL;
}

json_t *xn_qmp_graph_chain(json_t *graph, const char *top)
{
	json_t *nodes = json_object_get(graph, "nodes");
	json_t *edges = json_object_get(graph, "edges");
	json_t *ids = json_array(), *names = json_array();
	json_int_t first = graph_id(nodes, top);
	if (first >= 0)
		json_array_append_new(ids, json_integer(first));
	/* breadth first: ids grows while it is walked */
	for (size_t k = 0; k < json_array_size(ids) && k < 1000; k++) {
		json_int_t id = json_integer_value(json_array_get(ids, k));
		const char *name = graph_name(nodes, id);
		if (name && name[0])
			json_array_append_new(names, json_string(name));
		size_t i;
		json_t *e;
		json_array_foreach(edges, i, e) {
			if (json_integer_value(json_object_get(e, "parent")) != id)
				continue;
			json_t *child = json_object_get(e, "child");
			bool seen = false;
			size_t j;
			json_t *x;
			json_array_foreach(ids, j, x)
				seen = seen || json_integer_value(x) == json_integer_value(child);
			if (!seen)
				json_array_append(ids, child);
		}
	}
	json_decref(ids);
	return names;
}

/* The other end of the edge named `name` at node id: its child if
 * down, its parent if not; -1 if there is none. */
static json_int_t graph_edge(json_t *edges, json_int_t id, const char *name, bool down)
{
	size_t i;
	json_t *e;
	json_array_foreach(edges, i, e) {
		json_int_t from = json_integer_value(json_object_get(e, down ? "parent" : "child"));
		if (from == id && xn_streq(json_string_value(json_object_get(e, "name")), name))
			return json_integer_value(json_object_get(e, down ? "child" : "parent"));
	}
	return -1;
}

/* Whether path (a file name, path or URL as QEMU shows it) names file. */
static bool names_file(const char *path, const char *file)
{
	size_t n = path ? strlen(path) : 0, k = strlen(file);
	return n >= k && strcmp(path + n - k, file) == 0 && (n == k || path[n - k - 1] == '/');
}

bool xn_qmp_chain_around(json_t *graph, json_t *named, const char *file, const char **above,
			 const char **base, const char **below)
{
	/* the protocol node (file, nfs, ...) that opens file */
	const char *proto = NULL;
	size_t i;
	json_t *n;
	json_array_foreach(named, i, n)
		if (!xn_streq(json_string_value(json_object_get(n, "drv")), "qcow2") &&
		    names_file(json_string_value(json_object_get(n, "file")), file))
			proto = json_string_value(json_object_get(n, "node-name"));
	json_t *nodes = json_object_get(graph, "nodes");
	json_t *edges = json_object_get(graph, "edges");
	json_int_t p = proto ? graph_id(nodes, proto) : -1;
	json_int_t b = p >= 0 ? graph_edge(edges, p, "file", false) : -1;
	json_int_t a = b >= 0 ? graph_edge(edges, b, "backing", false) : -1;
	json_int_t d = b >= 0 ? graph_edge(edges, b, "backing", true) : -1;
	if (a < 0)
		return false;
	*above = graph_name(nodes, a);
	*base = graph_name(nodes, b);
	*below = d >= 0 ? graph_name(nodes, d) : NULL;
	return *above && *base;
}
