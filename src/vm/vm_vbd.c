/* vm_vbd.c: the VBD messages that touch a running VM: plug (hot-plug),
 * unplug and unplug_force (hot-unplug), insert and eject (CD media),
 * and destroy's check that a VBD is detached first (xenapi.md §VBD).
 *
 * On a halted VM plug and unplug fail with VM_BAD_POWER_STATE, as in
 * xapi, and insert and eject only change the records (the next start
 * builds the machine from them). On a running VM:
 *
 * - plug: storage prepares the disk (xn_vdi_prepare_attach), query-pci
 *   finds a free PCIe root port (the disk's own rp-vbd-<n> if it had
 *   one at start, else a spare rp-hp<k>: xn_hotplug_find_port), then
 *   blockdev-add of the two nodes xn_qemu_disk_blockdevs builds for the
 *   command line too, and device_add.
 * - unplug: device_del, then the guest releases the device and QEMU
 *   says DEVICE_DELETED (xn_hotplug_unplug, with its timeout and late
 *   DEVICE_DELETED); only then is the disk detached: its nodes are
 *   deleted (the current top node, which a snapshot may have replaced,
 *   then drive-<n> and file-<n>) and currently_attached goes false.
 * - insert / eject: the tray is opened (forced: the guest may lock it),
 *   the medium removed or inserted with blockdev-remove-medium /
 *   blockdev-insert-medium, and the tray closed.
 *
 * CD drives cannot be hot-plugged (the AHCI controller of HVM guests
 * has no hot-plug): plug and unplug of a CD on a running VM fail with
 * OPERATION_NOT_ALLOWED. One VBD operation runs per VM at a time. */
#include "vm/vm_runtime.h"

#include <stdlib.h>
#include <string.h>

#include "engine/qemu_argv.h"
#include "engine/qmp_commands.h"
#include "storage/storage.h"
#include "util/log.h"
#include "util/uuid.h"

/* hp.ref is the VBD, hp.device its userdevice; hp.name "plug",
 * "unplug", "insert" or "eject". */
struct vbd_op {
	xn_hotplug_op hp;       /* first: the shared part */
	char *vdi;
	char *top;              /* unplug: the top node before device_del */
	json_t *file, *drive;   /* plug, insert: the nodes to add */
	json_t *dev;            /* plug: the device to add (bus set once known) */
	json_t *nodes;          /* nodes to delete, in order */
	json_t *locks;          /* plug: toolstack locks taken, the domain's once plugged */
	size_t next;            /* in nodes */
	size_t step;            /* insert, eject: the next QMP step */
};

static const xn_hotplug_kind vbd_kind;

/* ---- bookkeeping -------------------------------------------------------- */

static struct vbd_op *op_new(xn_call *c, const char *name, const char *vbd)
{
	return (struct vbd_op *)xn_hotplug_op_new(&vbd_kind, c->host, c, name, vbd);
}

static void vbd_op_free(xn_hotplug_op *hp)
{
	struct vbd_op *o = (struct vbd_op *)hp;
	free(o->vdi);
	free(o->top);
	json_decref(o->file);
	json_decref(o->drive);
	json_decref(o->dev);
	json_decref(o->nodes);
	xn_vm_disk_release(o->hp.h, o->locks, NULL);
	json_decref(o->locks);
}

static void op_fail_qmp(struct vbd_op *o, const char *what, const xn_error *qerr)
{
	xn_hotplug_end(&o->hp, xn_hotplug_error(&o->hp, what, qerr));
}

/* ---- checks ------------------------------------------------------------- */

/* The running domain of the VBD's VM for op (plug, unplug): xapi's
 * checks in its order, NULL with the error. */
static struct dom *hotplug_dom(xn_call *c, const char *vbd, bool plug, xn_error **err)
{
	xn_host *h = c->host;
	struct dom *d = xn_hotplug_dom(h, &vbd_kind, vbd, plug, err);
	if (!d)
		return NULL;
	if (xn_streq(xn_db_str(h->db, vbd, "type"), "CD")) {
		xn_fail(err, "OPERATION_NOT_ALLOWED",
			"CD drives cannot be hot-plugged or unplugged, only inserted or ejected", NULL);
		return NULL;
	}
	if (!plug && !xn_db_bool(h->db, vbd, "unpluggable")) {
		xn_fail(err, "VBD_NOT_UNPLUGGABLE", vbd, NULL);
		return NULL;
	}
	if (plug && (xn_db_bool(h->db, vbd, "empty") || !xn_db_get(h->db, xn_db_str(h->db, vbd, "VDI")))) {
		xn_fail(err, "VBD_IS_EMPTY", vbd, NULL);
		return NULL;
	}
	return d;
}

/* Another VBD operation on the VM, or a VM operation, is running. */
static int check_idle(xn_call *c, const char *vbd, xn_error **err)
{
	xn_host *h = c->host;
	return xn_hotplug_idle(h, &vbd_kind, xn_db_str(h->db, vbd, "VM"), err);
}

/* ---- node deletion (unplug, eject, failed plug) ---------------------------- */

static void del_next(struct vbd_op *o, void (*then)(struct vbd_op *o));

struct del_ctx {
	struct vbd_op *o;
	void (*then)(struct vbd_op *o);
};

static void del_reply(void *ud, json_t *ret, const xn_error *err)
{
	struct del_ctx *x = ud;
	(void)ret;
	(void)err; /* already gone (nothing stale to clean up), or still in use */
	struct vbd_op *o = x->o;
	void (*then)(struct vbd_op *o) = x->then;
	free(x);
	del_next(o, then);
}

/* blockdev-del every node of o->nodes in order, errors ignored, then
 * then(o). */
static void del_next(struct vbd_op *o, void (*then)(struct vbd_op *o))
{
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (!d || o->next >= json_array_size(o->nodes)) {
		then(o);
		return;
	}
	struct del_ctx *x = xn_calloc(1, sizeof(*x));
	x->o = o;
	x->then = then;
	const char *node = json_string_value(json_array_get(o->nodes, o->next++));
	xn_dom_qmp(d, "blockdev-del", json_pack("{s:s}", "node-name", node), del_reply, x);
}

/* The nodes of the disk to delete: top (if known), drive-<n>, file-<n>. */
static void plan_delete(struct vbd_op *o, const char *top)
{
	if (!o->nodes)
		o->nodes = json_array();
	json_array_clear(o->nodes);
	o->next = 0;
	XN_AUTOFREE char *drive = xn_asprintf("drive-%s", o->hp.device);
	XN_AUTOFREE char *file = xn_asprintf("file-%s", o->hp.device);
	if (top && strcmp(top, drive) != 0 && strcmp(top, file) != 0)
		json_array_append_new(o->nodes, json_string(top));
	json_array_append_new(o->nodes, json_string(drive));
	json_array_append_new(o->nodes, json_string(file));
}

/* ---- VBD.plug ----------------------------------------------------------- */

static void plug_fail_cleanup(struct vbd_op *o)
{
	xn_hotplug_end(&o->hp, NULL); /* the error was answered before the cleanup */
}

/* A step failed after nodes were added: answer, then delete them. */
static void plug_undo(struct vbd_op *o, const char *what, const xn_error *qerr)
{
	xn_hotplug_answer(&o->hp, xn_hotplug_error(&o->hp, what, qerr));
	plan_delete(o, NULL);
	del_next(o, plug_fail_cleanup);
}

static void plug_device_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vbd_op *o = ud;
	(void)ret;
	if (err) {
		plug_undo(o, "device_add", err);
		return;
	}
	xn_info("vbd: VM %s: disk %s hot-plugged on %s", xn_db_str(o->hp.h->db, o->hp.vm, "uuid"),
		o->hp.device, o->hp.port);
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (d) { /* the domain holds the disk's lock from now on */
		json_array_extend(d->locks, o->locks);
		json_array_clear(o->locks);
	}
	xn_hotplug_commit(&o->hp, json_pack("{s:b}", "currently_attached", 1));
}

static void plug_drive_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vbd_op *o = ud;
	(void)ret;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (err || !d) {
		plug_undo(o, "blockdev-add", err);
		return;
	}
	json_object_set_new(o->dev, "bus", json_string(o->hp.port));
	xn_dom_qmp(d, "device_add", json_incref(o->dev), plug_device_added, o);
}

static void plug_file_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vbd_op *o = ud;
	(void)ret;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (err || !d) {
		plug_undo(o, "blockdev-add", err);
		return;
	}
	xn_dom_qmp(d, "blockdev-add", json_incref(o->drive), plug_drive_added, o);
}

static void plug_add_nodes(struct vbd_op *o)
{
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (!d) {
		op_fail_qmp(o, "hot-plug", NULL);
		return;
	}
	xn_dom_qmp(d, "blockdev-add", json_incref(o->file), plug_file_added, o);
}

/* The port is known (xn_hotplug_find_port): first delete nodes a failed
 * operation may have left under our names. */
static void plug_port_found(xn_hotplug_op *hp)
{
	struct vbd_op *o = (struct vbd_op *)hp;
	plan_delete(o, NULL);
	del_next(o, plug_add_nodes);
}

static void plug_prepared(void *ud, xn_error *err)
{
	struct vbd_op *o = ud;
	xn_host *h = o->hp.h;
	struct dom *d = xn_dom_find(h, o->hp.vm);
	if (err || !d) {
		if (!err)
			xn_fail(&err, "VM_BAD_POWER_STATE", o->hp.vm, "running",
				xn_hotplug_lower_state(xn_db_str(h->db, o->hp.vm, "power_state")),
				NULL);
		xn_hotplug_end(&o->hp, err);
		return;
	}
	/* After prepare: the VDI may have a fresh overlay as its image now. */
	json_t *node = xn_vdi_node(h, o->vdi);
	xn_qemu_disk disk = {.vbd = xn_db_get(h->db, o->hp.ref), .vdi = xn_db_get(h->db, o->vdi),
			     .node = node, .format = xn_vdi_format(h, o->vdi)};
	int rc = xn_qemu_disk_blockdevs(&disk, &o->file, &o->drive, &err);
	o->dev = rc < 0 ? NULL : xn_qemu_disk_device(&disk, "", 0, &err);
	json_decref(node);
	if (!o->dev) {
		xn_hotplug_end(&o->hp, err);
		return;
	}
	xn_hotplug_find_port(d, &o->hp);
}

static void vbd_plug(xn_call *c)
{
	xn_host *h = c->host;
	const char *vbd = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (!hotplug_dom(c, vbd, true, &err) || check_idle(c, vbd, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	struct vbd_op *o = op_new(c, "plug", vbd);
	o->vdi = xn_strdup(xn_db_str(h->db, vbd, "VDI"));
	o->locks = json_array();
	xn_vm_disk_acquire(h, o->hp.vm, vbd, o->locks, plug_prepared, o);
}

/* ---- VBD.unplug ----------------------------------------------------------- */

static void unplug_detached(struct vbd_op *o)
{
	xn_info("vbd: VM %s: disk %s unplugged", xn_db_str(o->hp.h->db, o->hp.vm, "uuid"),
		o->hp.device);
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	const char *vdi = xn_db_str(o->hp.h->db, o->hp.ref, "VDI");
	if (d && !xn_ref_is_null(vdi))
		xn_vm_disk_release(o->hp.h, d->locks, xn_db_str(o->hp.h->db, vdi, "uuid"));
	xn_hotplug_commit(&o->hp, json_pack("{s:b}", "currently_attached", 0));
}

/* The device is gone (DEVICE_DELETED): delete its nodes, record it
 * detached. */
static void unplug_gone(xn_hotplug_op *hp)
{
	struct vbd_op *o = (struct vbd_op *)hp;
	if (json_array_size(o->nodes) == 0)
		plan_delete(o, o->top);
	o->next = 0;
	del_next(o, unplug_detached);
}

void xn_vbd_device_deleted(struct dom *d, const char *dev)
{
	xn_hotplug_device_deleted(&vbd_kind, d, dev);
}

/* The whole chain under the top node goes once the device is gone: the
 * overlays a snapshot added are the monitor's to delete too. */
static void unplug_chain_known(void *ud, json_t *ret, const xn_error *err)
{
	struct vbd_op *o = ud;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (!d) {
		op_fail_qmp(o, "unplug", NULL);
		return;
	}
	plan_delete(o, o->top);
	if (!err) {
		json_t *chain = xn_qmp_graph_chain(ret, o->top);
		size_t i;
		json_t *v;
		json_array_foreach(o->nodes, i, v) {
			bool listed = false;
			size_t j;
			json_t *w;
			json_array_foreach(chain, j, w)
				listed = listed || json_equal(v, w);
			if (!listed)
				json_array_append(chain, v);
		}
		json_decref(o->nodes);
		o->nodes = chain;
	}
	xn_hotplug_unplug(d, &o->hp);
}

static void unplug_top_known(void *ud, const char *node, const xn_error *err)
{
	struct vbd_op *o = ud;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (!d) {
		op_fail_qmp(o, "unplug", NULL);
		return;
	}
	if (err || !node) {
		/* QEMU has no such disk: the record was stale. */
		xn_warn("vbd: VM %s: QEMU has no disk %s; recording it detached",
			xn_db_str(o->hp.h->db, o->hp.vm, "uuid"), o->hp.device);
		xn_hotplug_commit(&o->hp, json_pack("{s:b}", "currently_attached", 0));
		return;
	}
	o->top = xn_strdup(node);
	xn_dom_qmp(d, "x-debug-query-block-graph", NULL, unplug_chain_known, o);
}

/* QEMU cannot pull a PCI device from under a guest without it, so the
 * forced unplug is the same request. */
static void vbd_unplug(xn_call *c)
{
	const char *vbd = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	struct dom *d = hotplug_dom(c, vbd, false, &err);
	if (!d || check_idle(c, vbd, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	struct vbd_op *o = op_new(c, "unplug", vbd);
	xn_dom_disk_node(d, o->hp.device, unplug_top_known, o);
}

/* ---- VBD.insert / VBD.eject ------------------------------------------------ */

/* Common checks; the domain if the change goes through QEMU, NULL with
 * *err clear for a halted VM (records only). */
static struct dom *media_dom(xn_call *c, const char *vbd, bool insert, xn_error **err)
{
	xn_host *h = c->host;
	if (!xn_streq(xn_db_str(h->db, vbd, "type"), "CD")) {
		xn_fail(err, "VBD_NOT_REMOVABLE_MEDIA", vbd, NULL);
		return NULL;
	}
	bool empty = xn_db_bool(h->db, vbd, "empty");
	if (insert && !empty) {
		xn_fail(err, "VBD_NOT_EMPTY", vbd, NULL);
		return NULL;
	}
	if (!insert && empty) {
		xn_fail(err, "VBD_IS_EMPTY", vbd, NULL);
		return NULL;
	}
	const char *vm = xn_db_str(h->db, vbd, "VM");
	const char *ps = xn_db_str(h->db, vm, "power_state");
	if (xn_streq(ps, "Halted"))
		return NULL;
	struct dom *d = xn_dom_find(h, vm);
	if (!d || (!xn_streq(ps, "Running") && !xn_streq(ps, "Paused"))) {
		xn_fail(err, "VM_BAD_POWER_STATE", vm, "halted, running, paused",
			xn_hotplug_lower_state(ps), NULL);
		return NULL;
	}
	if (check_idle(c, vbd, err) < 0)
		return NULL;
	return d;
}

/* The QMP steps of a medium change, in order; each reply runs the next.
 * Insert: add the file node, add the drive node, open the tray (forced:
 * the guest may hold it locked), insert, close. Eject: open, remove,
 * delete the drive and file nodes (errors ignored), close. */
static const char *const insert_steps[] = {"blockdev-add", "blockdev-add", "blockdev-open-tray",
					   "blockdev-insert-medium", "blockdev-close-tray", NULL};
static const char *const eject_steps[] = {"blockdev-open-tray", "blockdev-remove-medium",
					  "blockdev-del", "blockdev-del", "blockdev-close-tray",
					  NULL};

static void media_cleanup_done(struct vbd_op *o)
{
	xn_hotplug_op_free(&o->hp);
}

static void media_step(void *ud, json_t *ret, const xn_error *err)
{
	struct vbd_op *o = ud;
	(void)ret;
	bool insert = strcmp(o->hp.name, "insert") == 0;
	const char *const *steps = insert ? insert_steps : eject_steps;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	const char *prev = o->step ? steps[o->step - 1] : NULL;
	if ((err && !xn_streq(prev, "blockdev-del")) || !d) {
		xn_error *e = NULL;
		xn_fail_internal(&e, "%s of VBD %s: %s: %s", o->hp.name,
				 xn_db_str(o->hp.h->db, o->hp.ref, "uuid"), prev ? prev : "",
				 err ? err->message : "the VM's QEMU is gone");
		xn_hotplug_answer(&o->hp, e);
		if (insert) {
			plan_delete(o, NULL);
			del_next(o, media_cleanup_done);
		} else {
			xn_hotplug_op_free(&o->hp);
		}
		return;
	}
	const char *cmd = steps[o->step];
	if (!cmd) {
		xn_hotplug_commit(&o->hp, insert ? json_pack("{s:s,s:b}", "VDI", o->vdi, "empty", 0)
				     : json_pack("{s:s,s:b}", "VDI", XN_NULL_REF, "empty", 1));
		return;
	}
	size_t step = o->step++;
	XN_AUTOFREE char *id = xn_asprintf("vbd-%s", o->hp.device);
	json_t *args;
	if (strcmp(cmd, "blockdev-add") == 0)
		args = json_incref(step == 0 ? o->file : o->drive);
	else if (strcmp(cmd, "blockdev-del") == 0)
		args = json_pack("{s:o}", "node-name",
				 json_sprintf("%s-%s", step == 2 ? "drive" : "file", o->hp.device));
	else if (strcmp(cmd, "blockdev-open-tray") == 0)
		args = json_pack("{s:s,s:b}", "id", id, "force", 1);
	else if (strcmp(cmd, "blockdev-insert-medium") == 0)
		args = json_pack("{s:s,s:O}", "id", id, "node-name",
				 json_object_get(o->drive, "node-name"));
	else
		args = json_pack("{s:s}", "id", id);
	xn_dom_qmp(d, cmd, args, media_step, o);
}

static void media_begin(struct vbd_op *o)
{
	media_step(o, NULL, NULL);
}

static void insert_prepared(void *ud, xn_error *err)
{
	struct vbd_op *o = ud;
	xn_host *h = o->hp.h;
	if (err) {
		xn_hotplug_end(&o->hp, err);
		return;
	}
	json_t *node = xn_vdi_node(h, o->vdi);
	json_t *vbd = json_deep_copy(xn_db_get(h->db, o->hp.ref));
	json_object_set_new(vbd, "empty", json_false());
	xn_qemu_disk disk = {.vbd = vbd, .vdi = xn_db_get(h->db, o->vdi), .node = node,
			     .format = xn_vdi_format(h, o->vdi)};
	int rc = xn_qemu_disk_blockdevs(&disk, &o->file, &o->drive, &err);
	json_decref(node);
	json_decref(vbd);
	if (rc < 0) {
		xn_hotplug_end(&o->hp, err);
		return;
	}
	/* Nodes a failed operation may have left under our names. */
	plan_delete(o, NULL);
	del_next(o, media_begin);
}

/* A halted VM: the medium changes in the records only (vdi: NULL ref
 * for none). */
static void record_medium(xn_call *c, const char *vbd, const char *vdi)
{
	xn_host *h = c->host;
	xn_error *err = NULL;
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_set(cs, vbd, "VDI", json_string(vdi));
	xn_changes_set(cs, vbd, "empty", json_boolean(xn_ref_is_null(vdi)));
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

static void vbd_insert(xn_call *c)
{
	xn_host *h = c->host;
	const char *vbd = xn_call_arg_str(c, 0);
	const char *vdi = xn_call_arg_str(c, 1);
	xn_error *err = NULL;
	struct dom *d = media_dom(c, vbd, true, &err);
	if (err) {
		xn_call_fail(c, err);
		return;
	}
	if (!d) {
		record_medium(c, vbd, vdi);
		return;
	}
	struct vbd_op *o = op_new(c, "insert", vbd);
	o->vdi = xn_strdup(vdi);
	xn_vdi_prepare_attach(h, vdi, false, insert_prepared, o);
}

static void vbd_eject(xn_call *c)
{
	const char *vbd = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	struct dom *d = media_dom(c, vbd, false, &err);
	if (err) {
		xn_call_fail(c, err);
		return;
	}
	if (!d) {
		record_medium(c, vbd, XN_NULL_REF);
		return;
	}
	media_begin(op_new(c, "eject", vbd));
}

/* ---- VBD.destroy -------------------------------------------------------- */

/* As xapi: a VBD is unplugged before it goes. */
static void vbd_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *vbd = xn_call_arg_str(c, 0);
	if (xn_db_bool(h->db, vbd, "currently_attached")) {
		const char *vm = xn_db_str(h->db, vbd, "VM");
		XN_AUTOFREE char *msg = xn_asprintf("VBD '%s' still attached to '%s'",
						    xn_db_str(h->db, vbd, "uuid"),
						    xn_db_str(h->db, vm, "uuid"));
		xn_call_fail_code(c, "OPERATION_NOT_ALLOWED", msg, NULL);
		return;
	}
	xn_accessor_call(c, xn_model_class("VBD"), "destroy");
}

static const xn_hotplug_kind vbd_kind = {
	.cls = "VBD",
	.id = "vbd",
	.device_field = "userdevice",
	.vm_field = "VBDs",
	.noun = "disk",
	.spares = "disks",
	.size = sizeof(struct vbd_op),
	.port_found = plug_port_found,
	.gone = unplug_gone,
	.free = vbd_op_free,
};

const xn_api_method xn_vm_vbd_methods[] = {
	{"VBD.plug", vbd_plug},
	{"VBD.unplug", vbd_unplug},
	{"VBD.unplug_force", vbd_unplug},
	{"VBD.insert", vbd_insert},
	{"VBD.eject", vbd_eject},
	{"VBD.destroy", vbd_destroy},
	{NULL, NULL},
};
