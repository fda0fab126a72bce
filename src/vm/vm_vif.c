/* vm_vif.c: the VIF messages that touch a running VM: plug (hot-plug a
 * NIC), unplug and unplug_force (hot-unplug), and the rate limits of
 * qos_algorithm_type "ratelimit" (xenapi.md §VIF).
 *
 * On a halted VM plug and unplug fail with VM_BAD_POWER_STATE, as in
 * xapi (the next start makes a tap for every VIF). On a running VM:
 *
 * - plug: the daemon makes the VIF's tap in its network's bridge
 *   (xn_net_vif_tap, as at start) and sets its rate limit; query-pci
 *   finds a free PCIe root port (the VIF's own rp-vif-<device> if it had
 *   one at start, else a spare rp-hp<k>, shared with disk hot-plug);
 *   the tap's descriptor goes to QEMU with `getfd` over SCM_RIGHTS,
 *   `netdev_add` type tap takes it by name (net-<device>), `device_add`
 *   adds the virtio-net-pci vif-<device> with the VIF's MAC. Our copy of
 *   the descriptor is closed then: the tap lives as long as QEMU's.
 * - unplug: device_del, the guest releases the NIC and QEMU says
 *   DEVICE_DELETED (xn_vif_device_deleted, also when it comes late or
 *   after a daemon restart), then netdev_del closes QEMU's descriptor
 *   and the tap vanishes. A guest that does not answer within
 *   XN_VIF_UNPLUG_TIMEOUT_MS gets DEVICE_DETACH_REJECTED.
 *
 * Rate limits: qos_algorithm_type "ratelimit" with
 * qos_algorithm_params:kbps=N limits the tap both ways
 * (xn_nl_rate_limit) at start, at plug, and at once when either field
 * changes on a plugged VIF (the generic setters are wrapped here). Any
 * other type, or no kbps, means no limit. One VIF operation runs per VM
 * at a time. */
#include "vm/vm_runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/qemu_argv.h"
#include "engine/qmp_commands.h"
#include "net/net.h"
#include "net/netlink.h"
#include "util/log.h"

/* How long the guest has to release a NIC on unplug. */
#define XN_VIF_UNPLUG_TIMEOUT_MS 20000

struct vif_op {
	xn_call *call;          /* NULL once answered (a late unplug) */
	xn_host *h;
	const char *name;       /* "plug", "unplug" */
	char *vif, *vm, *device;
	char *port;             /* plug: the root port taken */
	xn_net_tap *tap;        /* plug: ours until QEMU has it */
	bool netdev;            /* plug: netdev_add done (undo on failure) */
	bool requested;         /* unplug: device_del answered */
	bool deleted;           /* unplug: DEVICE_DELETED seen */
	uv_timer_t *timer;
	struct vif_op *link;
};

static struct vif_op *in_flight;

/* ---- rate limits -------------------------------------------------------- */

/* The limit a VIF's record asks for, in kbps (0: none). A malformed kbps
 * is no limit, with a warning: records may come from VIF.create. */
static uint64_t vif_kbps(xn_host *h, const char *vif)
{
	if (!xn_streq(xn_db_str(h->db, vif, "qos_algorithm_type"), "ratelimit"))
		return 0;
	json_t *params = xn_db_field(h->db, vif, "qos_algorithm_params");
	const char *s = json_string_value(json_object_get(params, "kbps"));
	if (!s)
		return 0;
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || s[0] == '-') {
		xn_warn("vif %s: qos_algorithm_params:kbps '%s' is not a number: no limit",
			xn_db_str(h->db, vif, "uuid"), s);
		return 0;
	}
	return v;
}

int xn_vif_apply_qos(xn_host *h, const char *vif, const char *tap, xn_error **err)
{
	uint64_t kbps = vif_kbps(h, vif);
	if (kbps)
		xn_info("vif %s: tap %s limited to %llu kbps", xn_db_str(h->db, vif, "uuid"), tap,
			(unsigned long long)kbps);
	return xn_nl_rate_limit(tap, kbps, err);
}

/* A generic setter of qos_algorithm_type or qos_algorithm_params: the
 * accessor changes the record, then a plugged VIF's tap follows. The
 * call's completion is wrapped for that (the accessor answers it). */
struct qos_set {
	xn_host *h;
	char *vif;
	xn_call_done done;
	void *ud;
};

static void qos_set_done(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	struct qos_set *q = ud;
	xn_host *h = q->h;
	XN_AUTOERR xn_error *e = NULL;
	const char *vm = xn_db_str(h->db, q->vif, "VM");
	if (!err && xn_db_get(h->db, q->vif) && xn_db_bool(h->db, q->vif, "currently_attached") &&
	    xn_dom_find(h, vm)) {
		XN_AUTOFREE char *tap = xn_net_tap_name(xn_db_str(h->db, vm, "uuid"),
							xn_db_str(h->db, q->vif, "device"));
		if (xn_vif_apply_qos(h, q->vif, tap, &e) < 0)
			err = e;
	}
	q->done(q->ud, err ? NULL : result, type, err);
	free(q->vif);
	free(q);
}

/* A kbps the kernel can take, or INVALID_VALUE. */
static bool kbps_ok(xn_call *c, const char *key, json_t *value)
{
	if (!xn_streq(key, "kbps"))
		return true;
	const char *s = json_string_value(value);
	char *end = NULL;
	errno = 0;
	unsigned long long v = s ? strtoull(s, &end, 10) : 0;
	if (!s || !*s || *end || errno || s[0] == '-' || v == 0 || v > 100000000ULL) {
		xn_call_fail_code(c, "INVALID_VALUE", "qos_algorithm_params:kbps", s ? s : "",
				  NULL);
		return false;
	}
	return true;
}

static void qos_set(xn_call *c)
{
	const char *verb = strchr(c->method, '.') + 1;
	json_t *v = xn_call_arg(c, 1);
	if (strcmp(verb, "add_to_qos_algorithm_params") == 0 &&
	    !kbps_ok(c, json_string_value(v), xn_call_arg(c, 2)))
		return;
	if (strcmp(verb, "set_qos_algorithm_params") == 0 && json_is_object(v) &&
	    json_object_get(v, "kbps") && !kbps_ok(c, "kbps", json_object_get(v, "kbps")))
		return;
	struct qos_set *q = xn_calloc(1, sizeof(*q));
	*q = (struct qos_set){.h = c->host, .vif = xn_strdup(xn_call_arg_str(c, 0)),
			      .done = c->done, .ud = c->done_ud};
	c->done = qos_set_done;
	c->done_ud = q;
	xn_accessor_call(c, xn_model_class("VIF"), verb);
}

/* ---- bookkeeping -------------------------------------------------------- */

static struct vif_op *op_new(xn_host *h, xn_call *c, const char *name, const char *vif)
{
	struct vif_op *o = xn_calloc(1, sizeof(*o));
	o->call = c;
	o->h = h;
	o->name = name;
	o->vif = xn_strdup(vif);
	o->vm = xn_strdup(xn_db_str(h->db, vif, "VM"));
	o->device = xn_strdup(xn_db_str(h->db, vif, "device"));
	o->link = in_flight;
	in_flight = o;
	return o;
}

static void op_free(struct vif_op *o)
{
	for (struct vif_op **p = &in_flight; *p; p = &(*p)->link)
		if (*p == o) {
			*p = o->link;
			break;
		}
	if (o->timer)
		uv_close((uv_handle_t *)o->timer, (uv_close_cb)free);
	if (o->tap)
		xn_net_taps_free(o->tap, 1);
	free(o->vif);
	free(o->vm);
	free(o->device);
	free(o->port);
	free(o);
}

/* Answer the call (err taken over); the op stays if still waiting. */
static void op_answer(struct vif_op *o, xn_error *err)
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

static void op_end(struct vif_op *o, xn_error *err)
{
	op_answer(o, err);
	op_free(o);
}

static xn_error *qmp_error(struct vif_op *o, const char *what, const xn_error *qerr)
{
	xn_error *e = NULL;
	xn_fail_internal(&e, "%s of VIF %s: %s", what, xn_db_str(o->h->db, o->vif, "uuid"),
			 qerr ? qerr->message : "the VM's QEMU is gone");
	return e;
}

/* Record currently_attached and end the op. */
static void commit_attached(struct vif_op *o, bool on)
{
	xn_host *h = o->h;
	xn_error *err = NULL;
	if (xn_db_get(h->db, o->vif)) {
		xn_changes *cs = xn_changes_new(h->db);
		xn_changes_set(cs, o->vif, "currently_attached", json_boolean(on));
		xn_db_commit(h->db, cs, &err);
	}
	op_end(o, err);
}

static void reply_ignored(void *ud, json_t *ret, const xn_error *err)
{
	(void)ud;
	(void)ret;
	(void)err;
}

/* ---- checks ------------------------------------------------------------- */

static const char *lower_state(const char *ps)
{
	static const char *const names[][2] = {{"Halted", "halted"}, {"Running", "running"},
		{"Paused", "paused"}, {"Suspended", "suspended"}};
	for (size_t i = 0; i < XN_ARRAY_LEN(names); i++)
		if (xn_streq(ps, names[i][0]))
			return names[i][1];
	return ps;
}

/* The running domain of the VIF's VM for plug or unplug, xapi's checks
 * in its order; NULL with the error. */
static struct dom *hotplug_dom(xn_host *h, const char *vif, bool plug, xn_error **err)
{
	const char *vm = xn_db_str(h->db, vif, "VM");
	const char *ps = xn_db_str(h->db, vm, "power_state");
	struct dom *d = xn_dom_find(h, vm);
	if (!xn_streq(ps, "Running") || !d) {
		xn_fail(err, "VM_BAD_POWER_STATE", vm, "running", lower_state(ps), NULL);
		return NULL;
	}
	bool attached = xn_db_bool(h->db, vif, "currently_attached");
	if (plug && attached) {
		xn_fail(err, "DEVICE_ALREADY_ATTACHED", vif, NULL);
		return NULL;
	}
	if (!plug && !attached) {
		xn_fail(err, "DEVICE_ALREADY_DETACHED", vif, NULL);
		return NULL;
	}
	for (struct vif_op *o = in_flight; o; o = o->link)
		if (o->call && strcmp(o->vm, vm) == 0) {
			xn_fail(err, "OTHER_OPERATION_IN_PROGRESS", "VIF", o->vif, o->name, "", NULL);
			return NULL;
		}
	const char *task;
	json_t *what;
	json_object_foreach(xn_db_field(h->db, vm, "current_operations"), task, what) {
		xn_fail(err, "OTHER_OPERATION_IN_PROGRESS", "VM", vm, json_string_value(what), task,
			NULL);
		return NULL;
	}
	return d;
}

/* ---- VIF.plug ----------------------------------------------------------- */

/* A step failed: answer, and take back what QEMU got (its netdev closes
 * the tap; a named fd not yet taken is closed with closefd). */
static void plug_undo(struct vif_op *o, const char *what, const xn_error *qerr)
{
	op_answer(o, qmp_error(o, what, qerr));
	struct dom *d = xn_dom_find(o->h, o->vm);
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->device);
	XN_AUTOFREE char *fdname = xn_asprintf("vif-%s", o->device);
	if (d && o->netdev)
		xn_dom_qmp(d, "netdev_del", json_pack("{s:s}", "id", id), reply_ignored, NULL);
	else if (d)
		xn_dom_qmp(d, "closefd", json_pack("{s:s}", "fdname", fdname), reply_ignored, NULL);
	op_free(o);
}

static void plug_device_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	if (err) {
		plug_undo(o, "device_add", err);
		return;
	}
	xn_info("vif: VM %s: NIC %s hot-plugged on %s", xn_db_str(o->h->db, o->vm, "uuid"),
		o->device, o->port);
	commit_attached(o, true);
}

static void plug_netdev_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (err || !d) {
		plug_undo(o, "netdev_add", err);
		return;
	}
	o->netdev = true;
	xn_net_taps_free(o->tap, 1); /* QEMU holds the tap now */
	o->tap = NULL;
	xn_error *e = NULL;
	xn_qemu_nic nic = {.vif = xn_db_get(o->h->db, o->vif), .fd = 3};
	json_t *dev = xn_qemu_nic_device(&nic, o->port, &e);
	if (!dev) {
		plug_undo(o, "device_add", e);
		xn_error_free(e);
		return;
	}
	xn_dom_qmp(d, "device_add", dev, plug_device_added, o);
}

static void plug_got_fd(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (err || !d) {
		plug_undo(o, "getfd", err);
		return;
	}
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->device);
	XN_AUTOFREE char *fdname = xn_asprintf("vif-%s", o->device);
	xn_dom_qmp(d, "netdev_add",
		   json_pack("{s:s,s:s,s:s,s:b}", "type", "tap", "id", id, "fd", fdname, "vhost", 0),
		   plug_netdev_added, o);
}

/* A netdev a failed plug may have left under our name is gone: send the
 * tap. */
static void plug_send_fd(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	(void)err; /* no such netdev: the usual case */
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (!d || !d->qmp) {
		op_end(o, qmp_error(o, "getfd", NULL));
		return;
	}
	XN_AUTOFREE char *fdname = xn_asprintf("vif-%s", o->device);
	xn_qmp_send_fd(d->qmp, o->tap->fd, fdname, plug_got_fd, o);
}

/* The port: the VIF's own from start if free, else a free spare one. */
static void plug_ports(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (err || !d) {
		op_end(o, qmp_error(o, "query-pci", err));
		return;
	}
	XN_AUTOFREE char *own = xn_asprintf("rp-vif-%s", o->device);
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
			"no free hot-plug slot: a running VM takes %d devices (disks and NICs) more "
			"than it started with; restart it to attach this one",
			XN_QEMU_HOTPLUG_PORTS);
		xn_fail(&e, "OPERATION_NOT_ALLOWED", msg, NULL);
		op_end(o, e);
		return;
	}
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->device);
	xn_dom_qmp(d, "netdev_del", json_pack("{s:s}", "id", id), plug_send_fd, o);
}

static void vif_plug(xn_call *c)
{
	xn_host *h = c->host;
	const char *vif = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	struct dom *d = hotplug_dom(h, vif, true, &err);
	if (!d) {
		xn_call_fail(c, err);
		return;
	}
	struct vif_op *o = op_new(h, c, "plug", vif);
	o->tap = xn_calloc(1, sizeof(*o->tap));
	if (xn_net_vif_tap(h, o->vm, vif, o->tap, &err) < 0 ||
	    xn_vif_apply_qos(h, vif, o->tap->name, &err) < 0) {
		op_end(o, err);
		return;
	}
	xn_dom_qmp(d, "query-pci", NULL, plug_ports, o);
}

/* ---- VIF.unplug ----------------------------------------------------------- */

static void unplug_netdev_deleted(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	if (err)
		xn_warn("vif: VM %s: %s", xn_db_str(o->h->db, o->vm, "uuid"), err->message);
	xn_info("vif: VM %s: NIC %s unplugged", xn_db_str(o->h->db, o->vm, "uuid"), o->device);
	commit_attached(o, false);
}

/* The device is gone: drop its netdev (QEMU closes the tap), record it
 * detached. */
static void unplug_finish(struct vif_op *o)
{
	if (o->timer)
		uv_timer_stop(o->timer);
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (!d) {
		commit_attached(o, false);
		return;
	}
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->device);
	xn_dom_qmp(d, "netdev_del", json_pack("{s:s}", "id", id), unplug_netdev_deleted, o);
}

void xn_vif_device_deleted(struct dom *d, const char *dev)
{
	if (strncmp(dev, "vif-", 4) != 0)
		return;
	struct vif_op *o = NULL;
	for (struct vif_op *p = in_flight; p && !o; p = p->link)
		if (strcmp(p->vm, d->ref) == 0 && strcmp(p->name, "unplug") == 0 &&
		    strcmp(p->device, dev + 4) == 0)
			o = p;
	if (o && o->deleted)
		return;
	if (!o) {
		/* Not waited for (a daemon restart came in between): find the
		 * VIF and detach it all the same. */
		xn_host *h = d->h;
		const char *vif = NULL;
		size_t i;
		json_t *v;
		json_array_foreach(xn_db_field(h->db, d->ref, "VIFs"), i, v)
			if (xn_streq(xn_db_str(h->db, json_string_value(v), "device"), dev + 4))
				vif = json_string_value(v);
		if (!vif)
			return;
		o = op_new(h, NULL, "unplug", vif);
		o->requested = true;
	}
	o->deleted = true;
	if (o->requested)
		unplug_finish(o);
	/* else the reply to device_del, still to come, finishes */
}

static void unplug_timeout(uv_timer_t *t)
{
	struct vif_op *o = t->data;
	xn_error *e = NULL;
	XN_AUTOFREE char *why = xn_asprintf("the guest did not release the NIC within %d s",
					    XN_VIF_UNPLUG_TIMEOUT_MS / 1000);
	xn_fail(&e, "DEVICE_DETACH_REJECTED", "VIF", o->vif, why, NULL);
	xn_warn("vif: VM %s: %s", xn_db_str(o->h->db, o->vm, "uuid"), why);
	if (!xn_dom_find(o->h, o->vm))
		op_end(o, e); /* the VM is gone: so is the NIC */
	else
		op_answer(o, e); /* stays in flight: a late DEVICE_DELETED still detaches */
}

static void unplug_requested(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	if (err && strstr(err->message, "not found")) {
		/* QEMU has no such NIC: the record was stale. */
		xn_warn("vif: VM %s: QEMU has no NIC %s; recording it detached",
			xn_db_str(o->h->db, o->vm, "uuid"), o->device);
		o->requested = o->deleted = true;
		unplug_finish(o);
		return;
	}
	if (err) {
		op_end(o, qmp_error(o, "device_del", err));
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
	uv_timer_start(o->timer, unplug_timeout, XN_VIF_UNPLUG_TIMEOUT_MS, 0);
}

/* QEMU cannot pull a PCI device from under a guest without it, so the
 * forced unplug is the same request. */
static void vif_unplug(xn_call *c)
{
	xn_host *h = c->host;
	const char *vif = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	struct dom *d = hotplug_dom(h, vif, false, &err);
	if (!d) {
		xn_call_fail(c, err);
		return;
	}
	struct vif_op *o = op_new(h, c, "unplug", vif);
	XN_AUTOFREE char *id = xn_asprintf("vif-%s", o->device);
	xn_dom_qmp(d, "device_del", json_pack("{s:s}", "id", id), unplug_requested, o);
}

const xn_api_method xn_vm_vif_methods[] = {
	{"VIF.plug", vif_plug},
	{"VIF.unplug", vif_unplug},
	{"VIF.unplug_force", vif_unplug},
	{"VIF.set_qos_algorithm_type", qos_set},
	{"VIF.set_qos_algorithm_params", qos_set},
	{"VIF.add_to_qos_algorithm_params", qos_set},
	{"VIF.remove_from_qos_algorithm_params", qos_set},
	{NULL, NULL},
};
