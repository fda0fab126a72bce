/* vm_disk.c: what storage asks of a running VM's disks (vm.h): move a
 * disk onto a new overlay (blockdev-add + blockdev-snapshot), merge a
 * backing image into the image above it (block-stream); and save the
 * VM's memory to a file (suspend and checkpoints).
 *
 * The node QEMU writes for device vbd-N changes with every switch, so
 * it is always looked up (query-block) rather than assumed. */
#include "vm/vm_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "engine/qmp_commands.h"
#include "storage/storage.h"
#include "util/log.h"
#include "util/uuid.h"

bool xn_vm_has_qemu(xn_host *h, const char *vm_ref)
{
	return xn_dom_find(h, vm_ref) != NULL;
}

pid_t xn_vm_qemu_pid(xn_host *h, const char *vm_ref)
{
	struct dom *d = xn_dom_find(h, vm_ref);
	return d ? d->pid : 0;
}

void xn_vm_qmp(xn_host *h, const char *vm_ref, const char *cmd, json_t *args,
	       xn_qmp_reply_fn fn, void *ud)
{
	struct dom *d = xn_dom_find(h, vm_ref);
	if (!d || !d->qmp) {
		json_decref(args);
		XN_AUTOERR xn_error *e = NULL;
		xn_fail(&e, "VM_BAD_POWER_STATE", vm_ref, "running", "halted", NULL);
		fn(ud, NULL, e);
		return;
	}
	xn_dom_qmp(d, cmd, args, fn, ud);
}

struct disk_op {
	xn_host *h;
	char *vm, *userdevice, *vbd;
	char *location, *base_file, *node, *job;
	json_t *named;          /* stream: query-named-block-nodes */
	xn_vm_disk_done done;
	void *ud;
	int polls;
	bool streaming;         /* holds its VM's place in `streams` */
};

/* VMs with a stream in progress: one at a time per VM, so that no
 * query-named-block-nodes meets another disk's finished job (see
 * stream_idle). */
static json_t *streams;

/* A copy of a borrowed error (QMP replies lend theirs), NULL for NULL. */
static xn_error *error_copy(const xn_error *err)
{
	xn_error *e = NULL;
	if (err) {
		xn_failv(&e, err->code, err->params);
		xn_error_prefix(e, "%s", err->message);
	}
	return e;
}

static void disk_op_end(struct disk_op *o, const xn_error *err)
{
	if (o->streaming)
		json_object_del(streams, o->vm);
	o->done(o->ud, error_copy(err));
	free(o->vm);
	free(o->userdevice);
	free(o->vbd);
	free(o->location);
	free(o->base_file);
	free(o->node);
	free(o->job);
	json_decref(o->named);
	free(o);
}

static struct dom *disk_dom(struct disk_op *o)
{
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (!d || !d->qmp) {
		xn_error *e = NULL;
		xn_fail(&e, "VM_BAD_POWER_STATE", o->vm, "running", "halted", NULL);
		disk_op_end(o, e);
		xn_error_free(e);
		return NULL;
	}
	return d;
}

/* The domain for the next step, or NULL after ending the operation
 * because the last step failed or the VM's QEMU is gone. */
static struct dom *disk_step(struct disk_op *o, const xn_error *err)
{
	if (err) {
		disk_op_end(o, err);
		return NULL;
	}
	return disk_dom(o);
}

static struct disk_op *disk_op_new(xn_host *h, const char *vbd, xn_vm_disk_done done, void *ud)
{
	struct disk_op *o = xn_calloc(1, sizeof(*o));
	o->h = h;
	o->vbd = xn_strdup(vbd);
	o->vm = xn_strdup(xn_db_str(h->db, vbd, "VM"));
	o->userdevice = xn_strdup(xn_db_str(h->db, vbd, "userdevice"));
	o->done = done;
	o->ud = ud;
	return o;
}

/* ---- switch: a new overlay on top ------------------------------------------ */

static void switch_done(void *ud, json_t *ret, const xn_error *err)
{
	disk_op_end(ud, err);
}

static void switch_added(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = disk_step(o, err);
	if (!d)
		return;
	XN_AUTOFREE char *overlay = xn_asprintf("ov-%.27s", o->location);
	xn_dom_qmp(d, "blockdev-snapshot", json_pack("{s:s,s:s}", "node", o->node, "overlay", overlay),
		   switch_done, o);
}

/* The disk's top node is known: open the new image ("backing": null,
 * blockdev-snapshot puts the top under it), then make it the top. */
static void switch_top_known(void *ud, const char *node, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = disk_step(o, err);
	if (!d)
		return;
	const char *sr = xn_db_str(o->h->db, xn_db_str(o->h->db, o->vbd, "VDI"), "SR");
	json_t *file = xn_location_node(o->h, sr, o->location);
	if (!file) {
		xn_error *e = NULL;
		xn_fail(&e, "SR_UNKNOWN_DRIVER", xn_db_str(o->h->db, sr, "type"), NULL);
		disk_op_end(o, e);
		xn_error_free(e);
		return;
	}
	o->node = xn_strdup(node);
	XN_AUTOFREE char *name = xn_asprintf("ov-%.27s", o->location);
	json_t *args = json_pack("{s:s,s:s,s:o,s:n,s:s}", "driver", "qcow2", "node-name", name,
				 "file", file, "backing", "discard", "unmap");
	xn_dom_qmp(d, "blockdev-add", args, switch_added, o);
}

void xn_vm_disk_switch(xn_host *h, const char *vbd_ref, const char *location,
		       xn_vm_disk_done done, void *ud)
{
	struct disk_op *o = disk_op_new(h, vbd_ref, done, ud);
	o->location = xn_strdup(location);
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_disk_node(d, o->userdevice, switch_top_known, o);
}

/* ---- reconcile: disks left on a base copy by a daemon that died ------------- */

struct reconcile {
	xn_host *h;
	char *vm;
	json_t *todo;           /* [vbd, location] pairs still to switch */
	xn_vm_disk_done done;
	void *ud;
};

static void reconcile_next(void *ud, xn_error *err)
{
	struct reconcile *r = ud;
	if (err) {
		xn_warn("vm %s: cannot move a disk onto its recorded image: %s",
			xn_db_str(r->h->db, r->vm, "uuid"), err->message);
		xn_error_free(err);
	}
	json_t *pair = json_array_get(r->todo, 0);
	if (pair) {
		XN_AUTOFREE char *vbd = xn_strdup(json_string_value(json_array_get(pair, 0)));
		XN_AUTOFREE char *loc = xn_strdup(json_string_value(json_array_get(pair, 1)));
		json_array_remove(r->todo, 0);
		xn_vm_disk_switch(r->h, vbd, loc, reconcile_next, r);
		return;
	}
	r->done(r->ud, NULL);
	json_decref(r->todo);
	free(r->vm);
	free(r);
}

static void reconcile_blocks(void *ud, json_t *ret, const xn_error *err)
{
	struct reconcile *r = ud;
	xn_host *h = r->h;
	size_t i;
	json_t *v;
	json_array_foreach(err ? NULL : xn_db_field(h->db, r->vm, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		const char *vdi = xn_db_str(h->db, vbd, "VDI");
		if (!xn_db_bool(h->db, vbd, "currently_attached") || xn_ref_is_null(vdi) ||
		    !xn_db_get(h->db, vdi))
			continue;
		XN_AUTOFREE char *id = xn_asprintf("vbd-%s", xn_db_str(h->db, vbd, "userdevice"));
		json_t *ins = xn_qmp_block_inserted_of(ret, id);
		const char *loc = xn_db_str(h->db, vdi, "location");
		const char *parent = json_string_value(
			json_object_get(xn_db_field(h->db, vdi, "sm_config"), "xenia-parent"));
		XN_AUTOFREE char *leaf = xn_location_file(loc);
		const char *top = json_string_value(json_object_get(json_object_get(ins, "image"),
								    "filename"));
		if (!top || strstr(top, leaf))
			continue;
		XN_AUTOFREE char *pfile = parent ? xn_location_file(parent) : NULL;
		if (pfile && strstr(top, pfile)) {
			xn_warn("vm %s: disk %s still writes '%s', recorded as a base copy: switching "
				"it to '%s'",
				xn_db_str(h->db, r->vm, "uuid"), id + 4, pfile, leaf);
			json_array_append_new(r->todo, json_pack("[s,s]", vbd, loc));
		} else {
			xn_warn("vm %s: disk %s runs on '%s', not on its recorded image '%s'",
				xn_db_str(h->db, r->vm, "uuid"), id + 4, top, leaf);
		}
	}
	reconcile_next(r, NULL);
}

void xn_vm_disks_reconcile(xn_host *h, const char *vm_ref, xn_vm_disk_done done, void *ud)
{
	struct dom *d = xn_dom_find(h, vm_ref);
	if (!d || !d->qmp) {
		done(ud, NULL);
		return;
	}
	struct reconcile *r = xn_calloc(1, sizeof(*r));
	*r = (struct reconcile){.h = h, .vm = xn_strdup(vm_ref), .todo = json_array(),
				.done = done, .ud = ud};
	xn_dom_qmp(d, "query-block", NULL, reconcile_blocks, r);
}

/* ---- stream: a backing image merged into the image above it ---------------- */

static void stream_poll(uv_timer_t *t);

static void timer_closed(uv_handle_t *t)
{
	free(t);
}

/* Call cb(timer) with timer->data = data in ms; the callback closes it
 * (poll_done). */
static void poll_later(xn_host *h, uint64_t ms, uv_timer_cb cb, void *data)
{
	uv_timer_t *t = xn_calloc(1, sizeof(*t));
	uv_timer_init(h->loop, t);
	t->data = data;
	uv_timer_start(t, cb, ms, 0);
}

/* The data of a poll_later timer, which is closed. */
static void *poll_done(uv_timer_t *t)
{
	void *data = t->data;
	uv_close((uv_handle_t *)t, timer_closed);
	return data;
}

static void ignore_reply(void *ud, json_t *ret, const xn_error *err)
{
}

/* A block node of QEMU that names file (its image, its protocol node's
 * options, its backing file name), or NULL. */
static const char *qemu_mentions(json_t *named, const char *file)
{
	size_t i;
	json_t *n;
	json_array_foreach(named, i, n) {
		XN_AUTOFREE char *text = json_dumps(n, JSON_COMPACT);
		if (text && strstr(text, file))
			return json_string_value(json_object_get(n, "node-name"));
	}
	return NULL;
}

static void stream_checked(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	const char *node = err ? NULL : qemu_mentions(ret, o->base_file);
	xn_error *e = NULL;
	if (node)
		xn_fail_internal(&e, "'%s' is out of disk %s's chain, but QEMU's node '%s' still "
				 "has it open", o->base_file, o->userdevice, node);
	disk_op_end(o, err ? err : e);
	xn_error_free(e);
}

/* base_file is out of the disk's chain: delete the nodes QEMU still has
 * on it (the disk's nodes from its start stay until deleted, and keep
 * the file open, its space taken), format nodes first; QEMU refuses to
 * delete a node in use. Then check that none is left. */
static void stream_close(struct disk_op *o, json_t *named)
{
	struct dom *d = disk_dom(o);
	if (!d)
		return;
	for (int pass = 0; pass < 2; pass++) {
		size_t i;
		json_t *n;
		json_array_foreach(named, i, n) {
			XN_AUTOFREE char *text = json_dumps(n, JSON_COMPACT);
			bool format = xn_streq(json_string_value(json_object_get(n, "drv")), "qcow2");
			if (!text || !strstr(text, o->base_file) || format != (pass == 0))
				continue;
			xn_dom_qmp(d, "blockdev-del",
				   json_pack("{s:O}", "node-name", json_object_get(n, "node-name")),
				   ignore_reply, NULL);
		}
	}
	xn_dom_qmp(d, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), stream_checked, o);
}

static void stream_after_named(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	if (err) {
		disk_op_end(o, err);
		return;
	}
	stream_close(o, ret);
}

static void stream_jobs(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	if (err) {
		disk_op_end(o, err);
		return;
	}
	size_t i;
	json_t *j;
	json_array_foreach(ret, i, j) {
		if (!xn_streq(json_string_value(json_object_get(j, "id")), o->job))
			continue;
		const char *st = json_string_value(json_object_get(j, "status"));
		if (xn_streq(st, "concluded") || xn_streq(st, "null")) {
			const char *e = json_string_value(json_object_get(j, "error"));
			struct dom *d = xn_dom_find(o->h, o->vm);
			if (d && d->qmp)
				xn_dom_qmp(d, "job-dismiss", json_pack("{s:s}", "id", o->job),
					   ignore_reply, NULL);
			if (!e && d && d->qmp) {
				/* after the dismiss (see stream_idle) */
				xn_dom_qmp(d, "query-named-block-nodes", json_pack("{s:b}", "flat", 1),
					   stream_after_named, o);
				return;
			}
			xn_error *x = NULL;
			xn_fail(&x, "SR_BACKEND_FAILURE", "block-stream", e ? e : "the VM stopped",
				"", NULL);
			disk_op_end(o, x);
			xn_error_free(x);
			return;
		}
	}
	if (json_array_size(ret) == 0 || ++o->polls > 100000) {
		xn_error *x = NULL;
		if (o->polls > 100000)
			xn_fail_internal(&x, "block-stream did not finish");
		disk_op_end(o, x);
		xn_error_free(x);
		return;
	}
	poll_later(o->h, 50, stream_poll, o);
}

static void stream_poll(uv_timer_t *t)
{
	struct disk_op *o = poll_done(t);
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_qmp(d, "query-jobs", NULL, stream_jobs, o);
}

static void stream_started(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = disk_step(o, err);
	if (d)
		xn_fault_point("stream-started");
	if (d && xn_fault_armed("stream-started-kill-qemu")) {
		xn_warn("fault point stream-started-kill-qemu: killing QEMU pid %d", (int)d->pid);
		kill(d->pid, SIGKILL);
	}
	if (d)
		xn_dom_qmp(d, "query-jobs", NULL, stream_jobs, o);
}

/* Find, in the flat node list, the node whose image is above base_file
 * and the node below base_file; start the stream there. */
/* The backing file name written in node's image header (borrowed). */
static const char *header_backing(json_t *named, const char *node)
{
	size_t i;
	json_t *n;
	json_array_foreach(named, i, n)
		if (xn_streq(json_string_value(json_object_get(n, "node-name")), node))
			return json_string_value(
				json_object_get(json_object_get(n, "image"), "backing-filename"));
	return NULL;
}

/* With the node list and the graph: the node above base_file is
 * streamed into, down to the node below it (none if base_file is the
 * bottom), keeping the backing file name as the header had it. */
static void stream_graph(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	if (err) {
		disk_op_end(o, err);
		return;
	}
	const char *above, *base, *below;
	bool found = xn_qmp_chain_around(ret, o->named, o->base_file, &above, &base, &below);
	struct dom *d = disk_dom(o);
	if (!d)
		return;
	if (!found) {
		/* Streamed already (by a previous daemon, whose job QEMU
		 * finished alone): close what is left of it. */
		xn_info("vm %s: '%s' is no longer in disk %s's chain: merged before", o->vm,
			o->base_file, o->userdevice);
		stream_close(o, o->named);
		return;
	}
	o->job = xn_asprintf("stream-%s", above);
	json_t *args = json_pack("{s:s,s:s,s:b}", "job-id", o->job, "device", above,
				 "auto-dismiss", 0);
	if (below) {
		json_object_set_new(args, "base-node", json_string(below));
		json_object_set_new(args, "backing-file", json_string(header_backing(o->named, base)));
	}
	xn_dom_qmp(d, "block-stream", args, stream_started, o);
}

static void stream_nodes(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = disk_step(o, err);
	if (!d)
		return;
	o->named = json_incref(ret);
	xn_dom_qmp(d, "x-debug-query-block-graph", NULL, stream_graph, o);
}

static void stream_idle(void *ud, json_t *ret, const xn_error *err);

static void stream_idle_poll(uv_timer_t *t)
{
	struct disk_op *o = poll_done(t);
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_qmp(d, "query-jobs", NULL, stream_idle, o);
}

/* Before looking at the nodes: no block job may run, and none may be
 * left concluded (QEMU 7.2 crashes in query-named-block-nodes while a
 * finished stream job is not dismissed). Jobs of a previous daemon are
 * waited for, or dismissed. */
static void stream_idle(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = disk_step(o, err);
	if (!d)
		return;
	bool running = false;
	size_t i;
	json_t *j;
	json_array_foreach(ret, i, j) {
		const char *id = json_string_value(json_object_get(j, "id"));
		const char *st = json_string_value(json_object_get(j, "status"));
		if (xn_streq(st, "concluded"))
			xn_dom_qmp(d, "job-dismiss", json_pack("{s:s}", "id", id), ignore_reply, NULL);
		else if (!xn_streq(st, "null"))
			running = true;
	}
	if (running) {
		if (++o->polls % 200 == 1)
			xn_info("vm %s: waiting for a block job to end before merging into disk %s",
				o->vm, o->userdevice);
		poll_later(o->h, 50, stream_idle_poll, o);
		return;
	}
	o->polls = 0;
	xn_dom_qmp(d, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), stream_nodes, o);
}

static void stream_begin(uv_timer_t *t);

static void stream_try(struct disk_op *o)
{
	struct dom *d = disk_dom(o);
	if (!d)
		return;
	if (!streams)
		streams = json_object();
	if (json_object_get(streams, o->vm)) {
		poll_later(o->h, 100, stream_begin, o);
		return;
	}
	json_object_set_new(streams, o->vm, json_true());
	o->streaming = true;
	xn_dom_qmp(d, "query-jobs", NULL, stream_idle, o);
}

static void stream_begin(uv_timer_t *t)
{
	stream_try(poll_done(t));
}

void xn_vm_disk_stream(xn_host *h, const char *vbd_ref, const char *base_file,
		       xn_vm_disk_done done, void *ud)
{
	struct disk_op *o = disk_op_new(h, vbd_ref, done, ud);
	o->base_file = xn_strdup(base_file);
	stream_try(o);
}

/* ---- memory to a file, for checkpoints ----------------------------------------- */

struct save {
	xn_host *h;
	char *vm;
	int fd;
	int polls;
	xn_vm_disk_done done;
	void *ud;
};

static void save_end(struct save *s, const xn_error *err)
{
	if (s->fd >= 0)
		close(s->fd);
	s->done(s->ud, error_copy(err));
	free(s->vm);
	free(s);
}

static struct dom *save_dom(struct save *s, const xn_error *err)
{
	struct dom *d = err ? NULL : xn_dom_find(s->h, s->vm);
	if (!err && (!d || !d->qmp)) {
		xn_error *e = NULL;
		xn_fail(&e, "VM_CHECKPOINT_SUSPEND_FAILED", s->vm, "the VM stopped", NULL);
		save_end(s, e);
		xn_error_free(e);
		return NULL;
	}
	if (err)
		save_end(s, err);
	return d;
}

static void save_poll(uv_timer_t *t);

static void save_queried(void *ud, json_t *ret, const xn_error *err)
{
	struct save *s = ud;
	if (!save_dom(s, err))
		return;
	const char *st = json_string_value(json_object_get(ret, "status"));
	if (xn_streq(st, "completed")) {
		xn_error *e = NULL;
		if (fsync(s->fd) < 0)
			xn_fail_errno(&e, errno, "cannot write the memory image");
		save_end(s, e);
		xn_error_free(e);
		return;
	}
	if (!st || xn_streq(st, "failed") || xn_streq(st, "cancelled") || ++s->polls > 60000) {
		xn_error *e = NULL;
		xn_fail(&e, "VM_CHECKPOINT_SUSPEND_FAILED", s->vm,
			json_string_value(json_object_get(ret, "error-desc")) ?: "migration failed",
			NULL);
		save_end(s, e);
		xn_error_free(e);
		return;
	}
	poll_later(s->h, 5, save_poll, s);
}

static void save_poll(uv_timer_t *t)
{
	struct save *s = poll_done(t);
	struct dom *d = save_dom(s, NULL);
	if (d)
		xn_dom_qmp(d, "query-migrate", NULL, save_queried, s);
}

static void save_migrating(void *ud, json_t *ret, const xn_error *err)
{
	struct save *s = ud;
	struct dom *d = save_dom(s, err);
	if (d)
		xn_dom_qmp(d, "query-migrate", NULL, save_queried, s);
}

static void save_got_fd(void *ud, json_t *ret, const xn_error *err)
{
	struct save *s = ud;
	struct dom *d = save_dom(s, err);
	if (d)
		xn_dom_qmp(d, "migrate", json_pack("{s:s}", "uri", "fd:xn-checkpoint"),
			   save_migrating, s);
}

static void save_unlimited(void *ud, json_t *ret, const xn_error *err)
{
	struct save *s = ud;
	struct dom *d = save_dom(s, err);
	if (d)
		xn_qmp_send_fd(d->qmp, s->fd, "xn-checkpoint", save_got_fd, s);
}

void xn_vm_save_memory(xn_host *h, const char *vm_ref, const char *path, xn_vm_disk_done done,
		       void *ud)
{
	struct save *s = xn_calloc(1, sizeof(*s));
	s->h = h;
	s->vm = xn_strdup(vm_ref);
	s->done = done;
	s->ud = ud;
	s->fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		xn_error *e = NULL;
		xn_fail_errno(&e, errno, "cannot create '%s'", path);
		save_end(s, e);
		xn_error_free(e);
		return;
	}
	struct dom *d = save_dom(s, NULL);
	/* The default migration bandwidth (128 MiB/s) would make this slow
	 * for no reason: the target is a local file. */
	if (d)
		xn_dom_qmp(d, "migrate-set-parameters",
			   json_pack("{s:I}", "max-bandwidth", (json_int_t)1 << 36), save_unlimited,
			   s);
}

/* ---- pause and continue, for consistent multi-disk snapshots ------------------- */

struct runstate {
	xn_vm_disk_done done;
	void *ud;
};

static void runstate_done(void *ud, json_t *ret, const xn_error *err)
{
	struct runstate *r = ud;
	r->done(r->ud, error_copy(err));
	free(r);
}

void xn_vm_qmp_simple(xn_host *h, const char *vm_ref, const char *cmd, xn_vm_disk_done done,
		      void *ud)
{
	struct dom *d = xn_dom_find(h, vm_ref);
	if (!d || !d->qmp) {
		xn_error *e = NULL;
		xn_fail(&e, "VM_BAD_POWER_STATE", vm_ref, "running", "halted", NULL);
		done(ud, e);
		return;
	}
	struct runstate *r = xn_calloc(1, sizeof(*r));
	r->done = done;
	r->ud = ud;
	xn_dom_qmp(d, cmd, NULL, runstate_done, r);
}
