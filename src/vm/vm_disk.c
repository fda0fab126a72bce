/* vm_disk.c: what storage asks of a running VM's disks (vm.h): move a
 * disk onto a new overlay (blockdev-add + blockdev-snapshot), merge a
 * backing image into the image above it (block-stream), and save the
 * VM's memory to a file (checkpoints).
 *
 * The node QEMU writes for device vbd-N changes with every switch, so
 * it is always looked up (query-block) rather than assumed. */
#include "vm/vm_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage.h"
#include "util/log.h"

struct disk_op {
	xn_host *h;
	char *vm, *userdevice, *vbd;
	char *location, *base_file, *node, *job;
	xn_vm_disk_done done;
	void *ud;
	int polls;
	uv_timer_t *timer;
};

static void disk_op_end(struct disk_op *o, const xn_error *err)
{
	xn_error *e = NULL;
	if (err)
		xn_failv(&e, err->code, err->params);
	o->done(o->ud, e);
	free(o->vm);
	free(o->userdevice);
	free(o->vbd);
	free(o->location);
	free(o->base_file);
	free(o->node);
	free(o->job);
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

/* The top node of device vbd-<userdevice> in a query-block reply. */
static const char *top_node(json_t *ret, const char *userdevice)
{
	XN_AUTOFREE char *id = xn_asprintf("/machine/peripheral/vbd-%s/", userdevice);
	size_t i;
	json_t *b;
	json_array_foreach(ret, i, b) {
		const char *qdev = json_string_value(json_object_get(b, "qdev"));
		if (qdev && strncmp(qdev, id, strlen(id)) == 0)
			return json_string_value(
				json_object_get(json_object_get(b, "inserted"), "node-name"));
	}
	return NULL;
}

/* ---- switch: a new overlay on top ------------------------------------------ */

static void switch_done(void *ud, json_t *ret, const xn_error *err)
{
	disk_op_end(ud, err);
}

static void switch_added(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = err ? NULL : disk_dom(o);
	if (err) {
		disk_op_end(o, err);
		return;
	}
	if (!d)
		return;
	XN_AUTOFREE char *overlay = xn_asprintf("ov-%.27s", o->location);
	xn_dom_qmp(d, "blockdev-snapshot", json_pack("{s:s,s:s}", "node", o->node, "overlay", overlay),
		   switch_done, o);
}

static void switch_queried(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	struct dom *d = err ? NULL : disk_dom(o);
	if (err) {
		disk_op_end(o, err);
		return;
	}
	if (!d)
		return;
	const char *node = top_node(ret, o->userdevice);
	json_t *file = xn_vdi_node(o->h, xn_db_str(o->h->db, o->vbd, "VDI"));
	if (!node || !file) {
		json_decref(file);
		xn_error *e = NULL;
		xn_fail_internal(&e, "disk %s of the VM is not in QEMU", o->userdevice);
		disk_op_end(o, e);
		xn_error_free(e);
		return;
	}
	o->node = xn_strdup(node);
	/* The new image, opened as the existing top will have it as its
	 * backing ("backing": null: blockdev-snapshot attaches it). */
	XN_AUTOFREE char *file_path = xn_location_file(o->location);
	json_t *fnode = json_deep_copy(file);
	json_decref(file);
	if (json_object_get(fnode, "filename")) {
		XN_AUTOFREE char *dir = xn_strdup(json_string_value(json_object_get(fnode, "filename")));
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[1] = '\0';
		json_object_set_new(fnode, "filename", json_sprintf("%s%s", dir, file_path));
	} else if (json_object_get(fnode, "path")) {
		XN_AUTOFREE char *dir = xn_strdup(json_string_value(json_object_get(fnode, "path")));
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[1] = '\0';
		json_object_set_new(fnode, "path", json_sprintf("%s%s", dir, file_path));
	}
	XN_AUTOFREE char *name = xn_asprintf("ov-%.27s", o->location);
	json_t *args = json_pack("{s:s,s:s,s:o,s:n,s:s}", "driver", "qcow2", "node-name", name,
				 "file", fnode, "backing", "discard", "unmap");
	xn_dom_qmp(d, "blockdev-add", args, switch_added, o);
}

void xn_vm_disk_switch(xn_host *h, const char *vbd_ref, const char *location,
		       xn_vm_disk_done done, void *ud)
{
	struct disk_op *o = disk_op_new(h, vbd_ref, done, ud);
	o->location = xn_strdup(location);
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_qmp(d, "query-block", NULL, switch_queried, o);
}

/* ---- stream: a backing image merged into the image above it ---------------- */

static void stream_poll(uv_timer_t *t);

static void ignore_reply(void *ud, json_t *ret, const xn_error *err)
{
}

static void timer_closed(uv_handle_t *t)
{
	free(t);
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
			xn_error *x = NULL;
			if (e)
				xn_fail(&x, "SR_BACKEND_FAILURE", "block-stream", e, "", NULL);
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
	uv_timer_t *t = xn_calloc(1, sizeof(*t));
	uv_timer_init(o->h->loop, t);
	t->data = o;
	uv_timer_start(t, stream_poll, 50, 0);
}

static void stream_poll(uv_timer_t *t)
{
	struct disk_op *o = t->data;
	uv_close((uv_handle_t *)t, timer_closed);
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_qmp(d, "query-jobs", NULL, stream_jobs, o);
}

static void stream_started(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	if (err) {
		disk_op_end(o, err);
		return;
	}
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_qmp(d, "query-jobs", NULL, stream_jobs, o);
}

/* Find, in the flat node list, the node whose image is above base_file
 * and the node below base_file; start the stream there. */
static void stream_nodes(void *ud, json_t *ret, const xn_error *err)
{
	struct disk_op *o = ud;
	if (err) {
		disk_op_end(o, err);
		return;
	}
	const char *above = NULL, *below = NULL, *below_file = NULL;
	size_t i;
	json_t *n;
	json_array_foreach(ret, i, n) {
		const char *drv = json_string_value(json_object_get(n, "drv"));
		if (!xn_streq(drv, "qcow2"))
			continue;
		const char *bf = json_string_value(json_object_get(n, "backing_file"));
		const char *file = json_string_value(json_object_get(n, "file"));
		if (bf && (xn_streq(bf, o->base_file) ||
			   (strlen(bf) > strlen(o->base_file) &&
			    xn_streq(bf + strlen(bf) - strlen(o->base_file), o->base_file))))
			above = json_string_value(json_object_get(n, "node-name"));
		if (file && strlen(file) >= strlen(o->base_file) &&
		    xn_streq(file + strlen(file) - strlen(o->base_file), o->base_file)) {
			json_t *img = json_object_get(n, "image");
			below_file = json_string_value(json_object_get(img, "backing-filename"));
		}
	}
	/* the node below the base is the one whose file is the base's backing */
	if (below_file) {
		json_array_foreach(ret, i, n) {
			const char *file = json_string_value(json_object_get(n, "file"));
			if (xn_streq(json_string_value(json_object_get(n, "drv")), "qcow2") && file &&
			    strlen(file) >= strlen(below_file) &&
			    xn_streq(file + strlen(file) - strlen(below_file), below_file))
				below = json_string_value(json_object_get(n, "node-name"));
		}
	}
	struct dom *d = disk_dom(o);
	if (!d)
		return;
	if (!above || (below_file && !below)) {
		xn_error *e = NULL;
		xn_fail_internal(&e, "image '%s' is not in the running disk's chain", o->base_file);
		disk_op_end(o, e);
		xn_error_free(e);
		return;
	}
	o->job = xn_asprintf("stream-%s", above);
	json_t *args = json_pack("{s:s,s:s}", "job-id", o->job, "device", above);
	if (below) {
		json_object_set_new(args, "base-node", json_string(below));
		json_object_set_new(args, "backing-file", json_string(below_file));
	}
	json_object_set_new(args, "auto-dismiss", json_false());
	xn_dom_qmp(d, "block-stream", args, stream_started, o);
}

void xn_vm_disk_stream(xn_host *h, const char *vbd_ref, const char *base_file,
		       xn_vm_disk_done done, void *ud)
{
	struct disk_op *o = disk_op_new(h, vbd_ref, done, ud);
	o->base_file = xn_strdup(base_file);
	struct dom *d = disk_dom(o);
	if (d)
		xn_dom_qmp(d, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), stream_nodes,
			   o);
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
	xn_error *e = NULL;
	if (err)
		xn_failv(&e, err->code, err->params);
	if (s->fd >= 0)
		close(s->fd);
	s->done(s->ud, e);
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
	uv_timer_t *t = xn_calloc(1, sizeof(*t));
	uv_timer_init(s->h->loop, t);
	t->data = s;
	uv_timer_start(t, save_poll, 5, 0);
}

static void save_poll(uv_timer_t *t)
{
	struct save *s = t->data;
	uv_close((uv_handle_t *)t, timer_closed);
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
	xn_error *e = NULL;
	if (err)
		xn_failv(&e, err->code, err->params);
	r->done(r->ud, e);
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
