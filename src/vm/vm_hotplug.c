/* vm_hotplug.c: the machinery disk hot-plug (vm_vbd.c) and NIC hot-plug
 * (vm_vif.c) share (vm_runtime.h §hot-plug operations).
 *
 * An operation (xn_hotplug_op, the head of a kind's own struct) is in
 * flight from its call until its end, one list for every kind; a VM
 * runs one operation of a kind at a time. Plug asks QEMU which PCIe
 * root port is free (query-pci): the device's own rp-<id>-<device> if
 * it had one at start, else a spare rp-hp<k>, shared by all kinds; so
 * nothing needs remembering across a daemon restart. Unplug is
 * device_del, then the guest releases the device and QEMU says
 * DEVICE_DELETED; only then does the kind detach it (k->gone). A guest
 * that does not answer within XN_HOTPLUG_UNPLUG_TIMEOUT_MS gets
 * DEVICE_DETACH_REJECTED, and the operation stays in flight without a
 * caller: a DEVICE_DELETED that comes later, even after a daemon
 * restart, still detaches the device. */
#include "vm/vm_runtime.h"

#include <stdlib.h>
#include <string.h>

#include "engine/qemu_argv.h"
#include "engine/qmp_commands.h"
#include "util/log.h"

/* How long the guest has to release a device on unplug. */
#define XN_HOTPLUG_UNPLUG_TIMEOUT_MS 20000

static xn_hotplug_op *in_flight;

/* ---- bookkeeping -------------------------------------------------------- */

xn_hotplug_op *xn_hotplug_op_new(const xn_hotplug_kind *k, xn_host *h, xn_call *c,
				 const char *name, const char *ref)
{
	xn_hotplug_op *o = xn_calloc(1, k->size);
	o->kind = k;
	o->call = c;
	o->h = h;
	o->name = name;
	o->ref = xn_strdup(ref);
	o->vm = xn_strdup(xn_db_str(h->db, ref, "VM"));
	o->device = xn_strdup(xn_db_str(h->db, ref, k->device_field));
	o->link = in_flight;
	in_flight = o;
	return o;
}

void xn_hotplug_op_free(xn_hotplug_op *o)
{
	for (xn_hotplug_op **p = &in_flight; *p; p = &(*p)->link)
		if (*p == o) {
			*p = o->link;
			break;
		}
	if (o->timer)
		uv_close((uv_handle_t *)o->timer, (uv_close_cb)free);
	o->kind->free(o);
	free(o->ref);
	free(o->vm);
	free(o->device);
	free(o->port);
	free(o);
}

void xn_hotplug_answer(xn_hotplug_op *o, xn_error *err)
{
	xn_call *c = o->call;
	o->call = NULL;
	if (!c) {
		xn_error_free(err);
		return;
	}
	if (err)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

void xn_hotplug_end(xn_hotplug_op *o, xn_error *err)
{
	xn_hotplug_answer(o, err);
	xn_hotplug_op_free(o);
}

xn_error *xn_hotplug_error(xn_hotplug_op *o, const char *what, const xn_error *qerr)
{
	xn_error *e = NULL;
	xn_fail_internal(&e, "%s of %s %s: %s", what, o->kind->cls,
			 xn_db_str(o->h->db, o->ref, "uuid"),
			 qerr ? qerr->message : "the VM's QEMU is gone");
	return e;
}

void xn_hotplug_commit(xn_hotplug_op *o, json_t *fields /* taken */)
{
	xn_host *h = o->h;
	xn_error *err = NULL;
	if (xn_db_get(h->db, o->ref)) {
		xn_changes *cs = xn_changes_new(h->db);
		const char *k;
		json_t *v;
		json_object_foreach(fields, k, v)
			xn_changes_set(cs, o->ref, k, json_incref(v));
		xn_db_commit(h->db, cs, &err);
	}
	json_decref(fields);
	xn_hotplug_end(o, err);
}

/* ---- checks ------------------------------------------------------------- */

const char *xn_hotplug_lower_state(const char *ps)
{
	static const char *const names[][2] = {{"Halted", "halted"}, {"Running", "running"},
		{"Paused", "paused"}, {"Suspended", "suspended"}};
	for (size_t i = 0; i < XN_ARRAY_LEN(names); i++)
		if (xn_streq(ps, names[i][0]))
			return names[i][1];
	return ps;
}

struct dom *xn_hotplug_dom(xn_host *h, const xn_hotplug_kind *k, const char *ref, bool plug,
			   xn_error **err)
{
	const char *vm = xn_db_str(h->db, ref, "VM");
	const char *ps = xn_db_str(h->db, vm, "power_state");
	struct dom *d = xn_dom_find(h, vm);
	if (!xn_streq(ps, "Running") || !d) {
		xn_fail(err, "VM_BAD_POWER_STATE", vm, "running", xn_hotplug_lower_state(ps), NULL);
		return NULL;
	}
	bool attached = xn_db_bool(h->db, ref, "currently_attached");
	if (plug && attached) {
		xn_fail(err, "DEVICE_ALREADY_ATTACHED", ref, NULL);
		return NULL;
	}
	if (!plug && !attached) {
		xn_fail(err, "DEVICE_ALREADY_DETACHED", ref, NULL);
		return NULL;
	}
	return d;
}

int xn_hotplug_idle(xn_host *h, const xn_hotplug_kind *k, const char *vm, xn_error **err)
{
	for (xn_hotplug_op *o = in_flight; o; o = o->link)
		if (o->kind == k && o->call && strcmp(o->vm, vm) == 0)
			return xn_fail(err, "OTHER_OPERATION_IN_PROGRESS", k->cls, o->ref,
				       o->name, "", NULL);
	const char *task;
	json_t *what;
	json_object_foreach(xn_db_field(h->db, vm, "current_operations"), task, what)
		return xn_fail(err, "OTHER_OPERATION_IN_PROGRESS", "VM", vm,
			       json_string_value(what), task, NULL);
	return 0;
}

/* ---- plug: a free root port --------------------------------------------- */

static void ports_known(void *ud, json_t *ret, const xn_error *err)
{
	xn_hotplug_op *o = ud;
	const xn_hotplug_kind *k = o->kind;
	if (err || !xn_dom_find(o->h, o->vm)) {
		xn_hotplug_end(o, xn_hotplug_error(o, "query-pci", err));
		return;
	}
	XN_AUTOFREE char *own = xn_asprintf("rp-%s-%s", k->id, o->device);
	if (xn_qmp_pci_port_free(ret, own))
		o->port = xn_strdup(own);
	for (int i = 0; !o->port && i < XN_QEMU_HOTPLUG_PORTS; i++) {
		XN_AUTOFREE char *p = xn_asprintf("rp-hp%d", i);
		if (xn_qmp_pci_port_free(ret, p))
			o->port = xn_strdup(p);
	}
	if (!o->port) {
		xn_error *e = NULL;
		XN_AUTOFREE char *msg = xn_asprintf(
			"no free hot-plug slot: a running VM takes %d %s more than it started "
			"with; restart it to attach this one",
			XN_QEMU_HOTPLUG_PORTS, k->spares);
		xn_fail(&e, "OPERATION_NOT_ALLOWED", msg, NULL);
		xn_hotplug_end(o, e);
		return;
	}
	k->port_found(o);
}

void xn_hotplug_find_port(struct dom *d, xn_hotplug_op *o)
{
	xn_dom_qmp(d, "query-pci", NULL, ports_known, o);
}

/* ---- unplug: device_del and DEVICE_DELETED ------------------------------ */

/* The device is gone: the kind detaches it. */
static void unplug_finish(xn_hotplug_op *o)
{
	if (o->timer)
		uv_timer_stop(o->timer);
	o->kind->gone(o);
}

void xn_hotplug_device_deleted(const xn_hotplug_kind *k, struct dom *d, const char *dev)
{
	size_t n = strlen(k->id);
	if (strncmp(dev, k->id, n) != 0 || dev[n] != '-')
		return;
	const char *device = dev + n + 1;
	xn_hotplug_op *o = NULL;
	for (xn_hotplug_op *p = in_flight; p && !o; p = p->link)
		if (p->kind == k && strcmp(p->vm, d->ref) == 0 && strcmp(p->name, "unplug") == 0 &&
		    strcmp(p->device, device) == 0)
			o = p;
	if (o && o->deleted)
		return;
	if (!o) {
		/* Not waited for (a daemon restart came in between): find the
		 * device and detach it all the same. */
		xn_host *h = d->h;
		const char *ref = xn_db_member_where(h->db, d->ref, k->vm_field, k->device_field,
						     device);
		if (!ref)
			return;
		o = xn_hotplug_op_new(k, h, NULL, "unplug", ref);
		o->requested = true;
	}
	o->deleted = true;
	if (o->requested)
		unplug_finish(o);
	/* else the reply to device_del, still to come, finishes */
}

static void unplug_timeout(uv_timer_t *t)
{
	xn_hotplug_op *o = t->data;
	const xn_hotplug_kind *k = o->kind;
	xn_error *e = NULL;
	XN_AUTOFREE char *why = xn_asprintf("the guest did not release the %s within %d s",
					    k->noun, XN_HOTPLUG_UNPLUG_TIMEOUT_MS / 1000);
	xn_fail(&e, "DEVICE_DETACH_REJECTED", k->cls, o->ref, why, NULL);
	xn_warn("%s: VM %s: %s", k->id, xn_db_str(o->h->db, o->vm, "uuid"), why);
	if (!xn_dom_find(o->h, o->vm))
		xn_hotplug_end(o, e); /* the VM is gone: so is the device */
	else
		xn_hotplug_answer(o, e); /* stays in flight: a late DEVICE_DELETED still detaches */
}

static void unplug_requested(void *ud, json_t *ret, const xn_error *err)
{
	xn_hotplug_op *o = ud;
	(void)ret;
	if (err && o->kind->missing_is_stale && strstr(err->message, "not found")) {
		/* QEMU has no such device: the record was stale. */
		xn_warn("%s: VM %s: QEMU has no %s %s; recording it detached", o->kind->id,
			xn_db_str(o->h->db, o->vm, "uuid"), o->kind->noun, o->device);
		o->requested = o->deleted = true;
		unplug_finish(o);
		return;
	}
	if (err) {
		xn_hotplug_end(o, xn_hotplug_error(o, "device_del", err));
		return;
	}
	o->requested = true;
	if (o->deleted) {
		unplug_finish(o); /* DEVICE_DELETED came before this reply */
		return;
	}
	o->timer = xn_calloc(1, sizeof(uv_timer_t));
	uv_timer_init(o->h->loop, o->timer);
	o->timer->data = o;
	uv_timer_start(o->timer, unplug_timeout, XN_HOTPLUG_UNPLUG_TIMEOUT_MS, 0);
}

void xn_hotplug_unplug(struct dom *d, xn_hotplug_op *o)
{
	XN_AUTOFREE char *id = xn_asprintf("%s-%s", o->kind->id, o->device);
	xn_dom_qmp(d, "device_del", json_pack("{s:s}", "id", id), unplug_requested, o);
}
