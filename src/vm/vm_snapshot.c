/* vm_snapshot.c: VMs from VMs: VM.clone (linked disks), VM.copy (full
 * disks, optionally to another SR), VM.snapshot (disks), VM.checkpoint
 * (disks and memory of a running VM) and VM.revert (vm.h).
 *
 * One state machine does all four copies, its steps top to bottom:
 *   checkpoint only: stop the guest, save its memory to a new file;
 *   make the new disk images (forks or full copies, vdi.c);
 *   one commit: the new VM, its VBDs, its VDIs (and memory image);
 *   a running source moves onto its disks' new images (paused between,
 *   so all disks of a snapshot are of one moment); continue the guest.
 * Files exist before records name them and records go before files, so
 * a crash anywhere leaves at worst unclaimed files for the collector. */
#include "vm/vm_runtime.h"

#include <fcntl.h>
#include <string.h>

#include "net/net.h"
#include "storage/storage.h"
#include "util/log.h"
#include "util/uuid.h"

enum kind { CLONE, COPY, SNAPSHOT, CHECKPOINT };

struct vmcopy {
	xn_call *call;
	xn_host *h;
	enum kind kind;
	char *src, *name, *sr;
	json_t *disks;            /* [[vdi ref, new location, target SR], ...] */
	xn_vdi_fork **forks;      /* per disk, CLONE/SNAPSHOT/CHECKPOINT */
	size_t n, next;
	bool stopped;             /* we stopped the guest */
	char *state;              /* checkpoint: memory image location */
	char *new_vm;
	xn_error *err;
	const char *op;           /* in the source's current_operations under task */
	char *task;
	bool own_task;
};

static void vmcopy_free(struct vmcopy *v)
{
	for (size_t i = 0; v->kind == COPY && i < v->n; i++) {
		json_t *d = json_array_get(v->disks, i);
		xn_storage_release(v->h, json_string_value(json_array_get(d, 2)),
				   json_string_value(json_array_get(d, 1)));
	}
	for (size_t i = 0; i < v->n; i++)
		xn_vdi_fork_free(v->forks ? v->forks[i] : NULL);
	free(v->forks);
	json_decref(v->disks);
	free(v->src);
	free(v->name);
	free(v->sr);
	free(v->state);
	free(v->new_vm);
	free(v->task);
	xn_error_free(v->err);
	free(v);
}

static void vmcopy_answer(struct vmcopy *v)
{
	json_t *result = v->err ? NULL : json_string(v->new_vm);
	xn_vm_op_unmark(v->h, v->src, v->task, v->op, v->own_task, v->err, result);
	json_decref(result);
	if (v->err) {
		xn_call_fail(v->call, v->err);
		v->err = NULL;
	} else {
		xn_call_return(v->call, json_string(v->new_vm));
	}
	vmcopy_free(v);
}

static void continued(void *ud, xn_error *err)
{
	struct vmcopy *v = ud;
	if (err && !v->err && v->kind == CHECKPOINT)
		xn_fail(&v->err, "VM_CHECKPOINT_RESUME_FAILED", v->src, err->message, NULL);
	xn_error_free(err);
	vmcopy_answer(v);
}

/* The end, good or bad: the guest continues if we stopped it. */
static void vmcopy_end(struct vmcopy *v, xn_error *err)
{
	if (err && !v->err)
		v->err = err;
	else
		xn_error_free(err);
	if (v->err && v->state) {
		xn_image_remove(v->h, v->h->local_sr_ref, v->state);
		xn_storage_release(v->h, v->h->local_sr_ref, v->state);
	}
	if (v->stopped) {
		xn_vm_qmp_simple(v->h, v->src, "cont", continued, v);
		return;
	}
	vmcopy_answer(v);
}

/* ---- the records ------------------------------------------------------------ */

/* The new VM record from the source's, with the fields a copy must not
 * share reset. */
static json_t *new_vm_record(struct vmcopy *v, xn_changes *cs)
{
	xn_host *h = v->h;
	json_t *rec = json_deep_copy(xn_db_get(h->db, v->src));
	static const char *reset[] = {"uuid", "VBDs", "VIFs", "consoles", "snapshots",
				      "children", "crash_dumps", "VTPMs", "VUSBs",
				      "current_operations", "allowed_operations", "snapshot_of",
				      NULL};
	for (size_t i = 0; reset[i]; i++)
		json_object_del(rec, reset[i]);
	json_object_set_new(rec, "name_label", json_string(v->name));
	json_object_set_new(rec, "is_default_template", json_false());
	json_object_set_new(rec, "power_state", json_string("Halted"));
	json_object_set_new(rec, "resident_on", json_string(XN_NULL_REF));
	json_object_set_new(rec, "suspend_VDI", json_string(XN_NULL_REF));
	json_object_set_new(rec, "guest_metrics", json_string(XN_NULL_REF));
	json_object_set_new(rec, "domid", json_integer(-1));
	json_object_del(json_object_get(rec, "other_config"), "xenia-builtin");
	if (v->kind == SNAPSHOT || v->kind == CHECKPOINT) {
		json_object_set_new(rec, "is_a_snapshot", json_true());
		json_object_set_new(rec, "is_a_template", json_true());
		json_object_set_new(rec, "snapshot_of", json_string(v->src));
		json_object_set_new(rec, "snapshot_time", xn_datetime_now());
	} else {
		json_object_set_new(rec, "is_a_snapshot", json_false());
		json_object_set_new(rec, "parent", json_string(v->src));
	}
	if (v->kind == CHECKPOINT) {
		json_object_set_new(rec, "power_state", json_string("Suspended"));
		const char *vdi = xn_changes_add(
			cs, xn_model_class("VDI"), NULL,
			json_pack("{s:s,s:s,s:s,s:s,s:b,s:I}", "name_label",
				  "Suspend image", "SR", v->h->local_sr_ref, "location", v->state,
				  "type", "suspend", "managed", 1, "virtual_size",
				  xn_db_int(h->db, v->src, "memory_static_max")));
		json_object_set_new(rec, "suspend_VDI", json_string(vdi));
	}
	const char *m = xn_changes_add(cs, xn_model_class("VM_metrics"), NULL, json_object());
	json_object_set_new(rec, "metrics", json_string(m));
	return rec;
}

/* The new VDI for disk i, added to cs (borrowed ref). */
static const char *new_disk(struct vmcopy *v, xn_changes *cs, size_t i)
{
	if (v->forks)
		return xn_vdi_fork_apply(v->forks[i], cs, NULL);
	json_t *pair = json_array_get(v->disks, i);
	json_t *rec = xn_vdi_record_copy(v->h, json_string_value(json_array_get(pair, 0)),
					 json_string_value(json_array_get(pair, 2)),
					 json_string_value(json_array_get(pair, 1)));
	return xn_changes_add(cs, xn_model_class("VDI"), NULL, rec);
}

static int commit_records(struct vmcopy *v, xn_error **err)
{
	xn_host *h = v->h;
	xn_changes *cs = xn_changes_new(h->db);
	json_t *rec = new_vm_record(v, cs);
	XN_AUTOFREE char *vm = xn_strdup(xn_changes_add(cs, xn_model_class("VM"), NULL, rec));
	json_t *map = json_object();
	for (size_t i = 0; i < v->n; i++) {
		const char *src = json_string_value(json_array_get(json_array_get(v->disks, i), 0));
		json_object_set_new(map, src, json_string(new_disk(v, cs, i)));
	}
	size_t i;
	json_t *b;
	json_array_foreach(xn_db_field(h->db, v->src, "VBDs"), i, b) {
		json_t *vbd = json_deep_copy(xn_db_get(h->db, json_string_value(b)));
		const char *vdi = json_string_value(json_object_get(vbd, "VDI"));
		bool disk = xn_streq(json_string_value(json_object_get(vbd, "type")), "Disk");
		if (disk && !xn_ref_is_null(vdi) && !json_object_get(map, vdi)) {
			json_decref(vbd);   /* an ignored disk */
			continue;
		}
		json_object_del(vbd, "uuid");
		json_object_del(vbd, "current_operations");
		json_object_set_new(vbd, "VM", json_string(vm));
		json_object_set_new(vbd, "currently_attached", json_false());
		if (json_object_get(map, vdi))
			json_object_set(vbd, "VDI", json_object_get(map, vdi));
		xn_changes_add(cs, xn_model_class("VBD"), NULL, vbd);
	}
	json_decref(map);
	/* a snapshot keeps the NICs' addresses (a revert brings them back);
	 * a clone or copy is another machine on the network: new ones */
	xn_net_copy_vifs(h, cs, v->src, vm, v->kind == SNAPSHOT || v->kind == CHECKPOINT);
	xn_vm_refresh_allowed(cs, vm);
	if (xn_db_commit(h->db, cs, err) < 0)
		return -1;
	v->new_vm = xn_strdup(vm);
	if (v->state)
		xn_storage_release(h, h->local_sr_ref, v->state);
	return 0;
}

/* ---- the steps ----------------------------------------------------------------- */

static void switch_next(void *ud, xn_error *err)
{
	struct vmcopy *v = ud;
	if (err) {
		/* this disk's fork undid itself; the snapshot is incomplete */
		xn_warn("vm: snapshot of %s: %s", v->src, err->message);
		vmcopy_end(v, err);
		return;
	}
	if (!v->forks || v->next == v->n) {
		vmcopy_end(v, NULL);
		return;
	}
	xn_vdi_fork_switch(v->forks[v->next++], switch_next, v);
}

static void made_next(void *ud, xn_error *err);

/* Remove the first n disks made. */
static void undo_disks(struct vmcopy *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_t *pair = json_array_get(v->disks, i);
		if (v->forks)
			xn_vdi_fork_abort(v->forks[i]);
		else
			xn_image_remove(v->h, json_string_value(json_array_get(pair, 2)),
					json_string_value(json_array_get(pair, 1)));
	}
}

static void disks_made(struct vmcopy *v)
{
	xn_error *err = NULL;
	if (commit_records(v, &err) < 0) {
		undo_disks(v, v->n);
		vmcopy_end(v, err);
		return;
	}
	v->next = 0;
	switch_next(v, NULL);
}

static void made_next(void *ud, xn_error *err)
{
	struct vmcopy *v = ud;
	if (err) {
		/* the failed disk undid itself; undo the ones before it */
		undo_disks(v, v->next - 1);
		vmcopy_end(v, err);
		return;
	}
	if (v->next == v->n) {
		disks_made(v);
		return;
	}
	size_t i = v->next++;
	if (v->forks) {
		xn_vdi_fork_prepare(v->forks[i], made_next, v);
		return;
	}
	json_t *pair = json_array_get(v->disks, i);
	xn_image_copy(v->h, json_string_value(json_array_get(pair, 0)),
		      json_string_value(json_array_get(pair, 2)),
		      json_string_value(json_array_get(pair, 1)), made_next, v);
}

static void memory_saved(void *ud, xn_error *err)
{
	struct vmcopy *v = ud;
	if (err) {
		vmcopy_end(v, err);
		return;
	}
	made_next(v, NULL);
}

/* The guest is not running: save its memory (checkpoints), then the
 * disks. */
static void frozen(struct vmcopy *v)
{
	if (v->kind != CHECKPOINT) {
		made_next(v, NULL);
		return;
	}
	XN_AUTOFREE char *uuid = xn_uuid_new();
	XN_AUTOFREE char *dir = xn_sr_file_dir(v->h, v->h->local_sr_ref);
	v->state = xn_asprintf("%s.state", uuid);
	XN_AUTOFREE char *path = xn_asprintf("%s/%s", dir, v->state);
	xn_storage_hold(v->h, v->h->local_sr_ref, v->state);
	xn_vm_save_memory(v->h, v->src, path, memory_saved, v);
}

static void stopped(void *ud, xn_error *err)
{
	struct vmcopy *v = ud;
	if (err) {
		vmcopy_end(v, err);
		return;
	}
	v->stopped = true;
	frozen(v);
}

/* Collect the disks to copy; ignore: VDI refs to leave out (may be NULL). */
static int collect(struct vmcopy *v, json_t *ignore, xn_error **err)
{
	xn_host *h = v->h;
	v->disks = json_array();
	size_t i;
	json_t *b;
	json_array_foreach(xn_db_field(h->db, v->src, "VBDs"), i, b) {
		const char *vbd = json_string_value(b);
		const char *vdi = xn_db_str(h->db, vbd, "VDI");
		if (!xn_streq(xn_db_str(h->db, vbd, "type"), "Disk") || !xn_db_get(h->db, vdi))
			continue;
		size_t k;
		json_t *ig;
		bool skip = false;
		json_array_foreach(ignore, k, ig)
			skip |= xn_streq(json_string_value(ig), vdi);
		if (skip)
			continue;
		XN_AUTOFREE char *loc = xn_uuid_new();
		json_array_append_new(v->disks, json_pack("[s,s,s]", vdi, loc,
							   v->sr ? v->sr : xn_db_str(h->db, vdi, "SR")));
	}
	v->n = json_array_size(v->disks);
	if (v->kind == COPY) {
		/* the copies' files are ours until their records exist: the
		 * collector leaves held files alone (vmcopy_free lets go) */
		for (i = 0; i < v->n; i++) {
			json_t *d = json_array_get(v->disks, i);
			xn_storage_hold(h, json_string_value(json_array_get(d, 2)),
					json_string_value(json_array_get(d, 1)));
		}
		return 0;
	}
	v->forks = xn_calloc(v->n + 1, sizeof(*v->forks));
	for (i = 0; i < v->n; i++) {
		const char *vdi = json_string_value(json_array_get(json_array_get(v->disks, i), 0));
		v->forks[i] = xn_vdi_fork_new(h, vdi, v->kind != CLONE, err);
		if (!v->forks[i])
			return -1;
	}
	return 0;
}

static void vm_copy_start(xn_call *c, enum kind kind, const char *op, json_t *ignore,
			  const char *sr)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, xn_db_get(h->db, vm), op, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	const char *name = xn_call_arg_str(c, 1);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			xn_call_fail_code(c, "INVALID_VALUE", "new_name", name, NULL);
			return;
		}
	}
	if (sr && !xn_ref_is_null(sr)) {
		const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
		if (xn_db_class_of(h->db, sr) != xn_model_class("SR") || !ops || ops->read_only) {
			xn_call_fail_code(c, "HANDLE_INVALID", "SR", sr, NULL);
			return;
		}
	}
	bool own_task = false;
	char *task = xn_vm_op_mark(c, vm, op, &own_task, &err);
	if (!task) {
		xn_call_fail(c, err);
		return;
	}
	struct vmcopy *v = xn_calloc(1, sizeof(*v));
	v->call = c;
	v->h = h;
	v->op = op;
	v->task = task;
	v->own_task = own_task;
	v->kind = kind;
	v->src = xn_strdup(vm);
	v->name = xn_strdup(name);
	v->sr = sr && !xn_ref_is_null(sr) ? xn_strdup(sr) : NULL;
	if (collect(v, ignore, &err) < 0) {
		vmcopy_end(v, err);
		return;
	}
	const char *ps = xn_db_str(h->db, vm, "power_state");
	bool running = xn_streq(ps, "Running") && xn_dom_find(h, vm);
	if (running && (kind == CHECKPOINT || kind == SNAPSHOT)) {
		xn_vm_qmp_simple(h, vm, "stop", stopped, v);
		return;
	}
	if (kind == CHECKPOINT && !xn_dom_find(h, vm)) {
		xn_fail(&err, "VM_BAD_POWER_STATE", vm, "running", ps, NULL);
		vmcopy_end(v, err);
		return;
	}
	frozen(v);
}

static void vm_clone(xn_call *c)
{
	vm_copy_start(c, CLONE, "clone", NULL, NULL);
}

static void vm_copy(xn_call *c)
{
	vm_copy_start(c, COPY, "copy", NULL, xn_call_arg_str(c, 2));
}

static void vm_snapshot(xn_call *c)
{
	vm_copy_start(c, SNAPSHOT, "snapshot", xn_call_arg(c, 2), NULL);
}

static void vm_checkpoint(xn_call *c)
{
	vm_copy_start(c, CHECKPOINT, "checkpoint", NULL, NULL);
}

/* ---- revert ------------------------------------------------------------------ */

struct revert {
	xn_call *call;
	xn_host *h;
	char *snap, *vm;
	json_t *disks;            /* [[snapshot VBD's userdevice, snapshot VDI], ...] */
	xn_vdi_fork **forks;
	size_t n, next;
};

static void revert_free(struct revert *r)
{
	for (size_t i = 0; i < r->n; i++)
		xn_vdi_fork_free(r->forks[i]);
	free(r->forks);
	json_decref(r->disks);
	free(r->snap);
	free(r->vm);
	free(r);
}

static void revert_end(struct revert *r, xn_error *err)
{
	if (err) {
		xn_error *e = NULL;
		xn_fail(&e, "VM_REVERT_FAILED", r->vm, r->snap, NULL);
		xn_error_prefix(e, "%s", err->message);
		xn_warn("vm: revert of %s to %s: %s", r->vm, r->snap, err->message);
		xn_error_free(err);
		xn_call_fail(r->call, e);
	} else {
		xn_call_return(r->call, NULL);
	}
	revert_free(r);
}

static void revert_resumed(void *ud, xn_error *err)
{
	revert_end(ud, err);
}

static const char *config_fields[] = {
	"memory_static_max", "memory_static_min", "memory_dynamic_max", "memory_dynamic_min",
	"VCPUs_max", "VCPUs_at_startup", "VCPUs_params", "platform", "HVM_boot_policy",
	"HVM_boot_params", "PV_kernel", "PV_ramdisk", "PV_args", "PV_bootloader",
	"actions_after_shutdown", "actions_after_reboot", "actions_after_crash", NULL};

/* Every disk has its new image: one commit points the VM at them and
 * restores its configuration; the images it had go. */
static void revert_commit(struct revert *r)
{
	xn_host *h = r->h;
	xn_changes *cs = xn_changes_new(h->db);
	json_t *gone = json_array();   /* [[sr, location], ...] removed after the commit */
	for (size_t i = 0; i < r->n; i++) {
		const char *ud = json_string_value(json_array_get(json_array_get(r->disks, i), 0));
		const char *vbd = xn_db_member_where(h->db, r->vm, "VBDs", "userdevice", ud);
		const char *old = vbd ? xn_db_str(h->db, vbd, "VDI") : NULL;
		json_t *fields = json_object();
		if (old && xn_db_get(h->db, old)) {
			json_object_set(fields, "name_label", xn_db_field(h->db, old, "name_label"));
			json_object_set(fields, "name_description",
					xn_db_field(h->db, old, "name_description"));
		}
		json_object_set_new(fields, "is_a_snapshot", json_false());
		const char *nv = xn_vdi_fork_apply(r->forks[i], cs, fields);
		json_decref(fields);
		if (vbd) {
			xn_changes_set(cs, vbd, "VDI", json_string(nv));
		} else {
			const char *snap_vbd =
				xn_db_member_where(h->db, r->snap, "VBDs", "userdevice", ud);
			json_t *sv = json_deep_copy(xn_db_get(h->db, snap_vbd));
			json_object_del(sv, "uuid");
			json_object_set_new(sv, "VM", json_string(r->vm));
			json_object_set_new(sv, "VDI", json_string(nv));
			xn_changes_add(cs, xn_model_class("VBD"), NULL, sv);
		}
		if (!old || !xn_db_get(h->db, old) || json_array_size(xn_db_field(h->db, old, "VBDs")) > 1)
			continue;
		if (xn_vdi_forget(h, cs, old))
			json_array_append_new(gone, json_pack("[ss]", xn_db_str(h->db, old, "SR"),
							      xn_db_str(h->db, old, "location")));
	}
	for (size_t k = 0; config_fields[k]; k++) {
		json_t *val = xn_db_field(h->db, r->snap, config_fields[k]);
		if (val)
			xn_changes_set(cs, r->vm, config_fields[k], json_deep_copy(val));
	}
	/* the NICs as they were (their MACs are the snapshot's) */
	size_t vi;
	json_t *vv;
	json_array_foreach(xn_db_field(h->db, r->vm, "VIFs"), vi, vv)
		xn_changes_delete(cs, json_string_value(vv));
	xn_net_copy_vifs(h, cs, r->snap, r->vm, true);
	xn_vm_refresh_allowed(cs, r->vm);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		for (size_t i = 0; i < r->n; i++)
			xn_vdi_fork_abort(r->forks[i]);
		json_decref(gone);
		revert_end(r, err);
		return;
	}
	size_t i;
	json_t *g;
	json_array_foreach(gone, i, g) {
		const char *sr = json_string_value(json_array_get(g, 0));
		xn_image_remove(h, sr, json_string_value(json_array_get(g, 1)));
		xn_sr_gc_kick(h, sr);
	}
	json_decref(gone);
	for (size_t k = 0; k < r->n; k++)
		xn_vdi_fork_switch(r->forks[k], NULL, NULL);
	/* A checkpoint: the guest goes on from its saved memory. */
	const char *state = xn_db_str(h->db, r->snap, "suspend_VDI");
	if (!xn_streq(xn_db_str(h->db, r->snap, "power_state"), "Suspended") ||
	    !xn_db_get(h->db, state)) {
		revert_end(r, NULL);
		return;
	}
	XN_AUTOFREE char *path = xn_vdi_path(h, state);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0) {
		xn_fail(&err, "VDI_MISSING", xn_db_str(h->db, state, "SR"), state, NULL);
		revert_end(r, err);
		return;
	}
	xn_dom_start(h, r->vm, false, fd, revert_resumed, r);
}

static void revert_next(void *ud, xn_error *err)
{
	struct revert *r = ud;
	if (err) {
		for (size_t i = 0; i + 1 < r->next; i++)
			xn_vdi_fork_abort(r->forks[i]);
		revert_end(r, err);
		return;
	}
	if (r->next == r->n) {
		revert_commit(r);
		return;
	}
	xn_vdi_fork_prepare(r->forks[r->next++], revert_next, r);
}

/* The VM is halted: drop a suspend image it has, then the disks. */
static void revert_halted(struct revert *r)
{
	xn_host *h = r->h;
	const char *vdi = xn_db_str(h->db, r->vm, "suspend_VDI");
	if (!xn_ref_is_null(vdi) && xn_db_get(h->db, vdi)) {
		XN_AUTOFREE char *sr = xn_strdup(xn_db_str(h->db, vdi, "SR"));
		XN_AUTOFREE char *loc = xn_strdup(xn_db_str(h->db, vdi, "location"));
		xn_changes *cs = xn_changes_new(h->db);
		xn_changes_delete(cs, vdi);
		xn_changes_set(cs, r->vm, "suspend_VDI", json_string(XN_NULL_REF));
		xn_changes_set(cs, r->vm, "power_state", json_string("Halted"));
		xn_vm_refresh_allowed(cs, r->vm);
		xn_error *err = NULL;
		if (xn_db_commit(h->db, cs, &err) < 0) {
			revert_end(r, err);
			return;
		}
		xn_image_remove(h, sr, loc);
	}
	revert_next(r, NULL);
}

static void revert_exited(struct dom *d, void *ud)
{
	revert_halted(ud);
}

static void vm_revert(xn_call *c)
{
	xn_host *h = c->host;
	const char *snap = xn_call_arg_str(c, 0);
	const char *vm = xn_db_str(h->db, snap, "snapshot_of");
	if (!xn_db_bool(h->db, snap, "is_a_snapshot") || !xn_db_get(h->db, vm)) {
		xn_call_fail_code(c, "VM_REVERT_FAILED", vm, snap, NULL);
		return;
	}
	if (json_object_size(xn_db_field(h->db, vm, "current_operations")) > 0) {
		xn_call_fail_code(c, "OTHER_OPERATION_IN_PROGRESS", "VM", vm, NULL);
		return;
	}
	struct revert *r = xn_calloc(1, sizeof(*r));
	r->call = c;
	r->h = h;
	r->snap = xn_strdup(snap);
	r->vm = xn_strdup(vm);
	r->disks = json_array();
	size_t i;
	json_t *b;
	json_array_foreach(xn_db_field(h->db, snap, "VBDs"), i, b) {
		const char *vbd = json_string_value(b);
		const char *vdi = xn_db_str(h->db, vbd, "VDI");
		if (xn_streq(xn_db_str(h->db, vbd, "type"), "Disk") && xn_db_get(h->db, vdi))
			json_array_append_new(r->disks, json_pack("[ss]", xn_db_str(h->db, vbd,
									     "userdevice"), vdi));
	}
	r->n = json_array_size(r->disks);
	r->forks = xn_calloc(r->n + 1, sizeof(*r->forks));
	xn_error *err = NULL;
	for (i = 0; i < r->n; i++) {
		const char *vdi = json_string_value(json_array_get(json_array_get(r->disks, i), 1));
		r->forks[i] = xn_vdi_fork_new(h, vdi, false, &err);
		if (!r->forks[i]) {
			r->n = i;
			revert_end(r, err);
			return;
		}
	}
	struct dom *d = xn_dom_find(h, vm);
	if (d) {
		d->expected = true;
		d->on_exit = revert_exited;
		d->on_exit_ud = r;
		xn_dom_kill(d);
		return;
	}
	revert_halted(r);
}

static const xn_api_method snapshot_methods[] = {
	{"VM.clone", vm_clone},
	{"VM.copy", vm_copy},
	{"VM.snapshot", vm_snapshot},
	{"VM.checkpoint", vm_checkpoint},
	{"VM.revert", vm_revert},
	{NULL, NULL},
};

void xn_vm_snapshot_register(xn_api *api)
{
	xn_api_register(api, snapshot_methods);
}
