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
 *   one at start, else a spare rp-hp<k>, shared with disk hot-plug:
 *   xn_hotplug_find_port);
 *   the tap's descriptor goes to QEMU with `getfd` over SCM_RIGHTS,
 *   `netdev_add` type tap takes it by name (net-<device>), `device_add`
 *   adds the virtio-net-pci vif-<device> with the VIF's MAC. Our copy of
 *   the descriptor is closed then: the tap lives as long as QEMU's.
 * - unplug: device_del, the guest releases the NIC and QEMU says
 *   DEVICE_DELETED (xn_hotplug_unplug: also when it comes late or after
 *   a daemon restart; DEVICE_DETACH_REJECTED for a guest that does not
 *   answer in time), then netdev_del closes QEMU's descriptor and the
 *   tap vanishes.
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

/* hp.ref is the VIF, hp.device its device; hp.name "plug" or "unplug". */
struct vif_op {
	xn_hotplug_op hp;       /* first: the shared part */
	xn_net_tap *tap;        /* plug: ours until QEMU has it */
	bool netdev;            /* plug: netdev_add done (undo on failure) */
};

static const xn_hotplug_kind vif_kind;

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
	if (c->role < XN_ROLE_VM_ADMIN) { /* the accessor refuses it, as for any field */
		xn_accessor_call(c, xn_model_class("VIF"), verb);
		return;
	}
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

static struct vif_op *op_new(xn_call *c, const char *name, const char *vif)
{
	return (struct vif_op *)xn_hotplug_op_new(&vif_kind, c->host, c, name, vif);
}

static void vif_op_free(xn_hotplug_op *hp)
{
	struct vif_op *o = (struct vif_op *)hp;
	if (o->tap)
		xn_net_taps_free(o->tap, 1);
}

static xn_error *qmp_error(struct vif_op *o, const char *what, const xn_error *qerr)
{
	return xn_hotplug_error(&o->hp, what, qerr);
}

/* Record currently_attached and end the op. */
static void commit_attached(struct vif_op *o, bool on)
{
	xn_hotplug_commit(&o->hp, json_pack("{s:b}", "currently_attached", on));
}

static void reply_ignored(void *ud, json_t *ret, const xn_error *err)
{
	(void)ud;
	(void)ret;
	(void)err;
}

/* ---- checks ------------------------------------------------------------- */

/* The running domain of the VIF's VM for plug or unplug, xapi's checks
 * in its order; NULL with the error. */
static struct dom *hotplug_dom(xn_host *h, const char *vif, bool plug, xn_error **err)
{
	struct dom *d = xn_hotplug_dom(h, &vif_kind, vif, plug, err);
	if (!d || xn_hotplug_idle(h, &vif_kind, xn_db_str(h->db, vif, "VM"), err) < 0)
		return NULL;
	return d;
}

/* ---- VIF.plug ----------------------------------------------------------- */

/* A step failed: answer, and take back what QEMU got (its netdev closes
 * the tap; a named fd not yet taken is closed with closefd). */
static void plug_undo(struct vif_op *o, const char *what, const xn_error *qerr)
{
	xn_hotplug_answer(&o->hp, qmp_error(o, what, qerr));
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->hp.device);
	XN_AUTOFREE char *fdname = xn_asprintf("vif-%s", o->hp.device);
	if (d && o->netdev)
		xn_dom_qmp(d, "netdev_del", json_pack("{s:s}", "id", id), reply_ignored, NULL);
	else if (d)
		xn_dom_qmp(d, "closefd", json_pack("{s:s}", "fdname", fdname), reply_ignored, NULL);
	xn_hotplug_op_free(&o->hp);
}

static void plug_device_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	if (err) {
		plug_undo(o, "device_add", err);
		return;
	}
	xn_info("vif: VM %s: NIC %s hot-plugged on %s", xn_db_str(o->hp.h->db, o->hp.vm, "uuid"),
		o->hp.device, o->hp.port);
	xn_fault_point("vif-plugged-before-commit");
	commit_attached(o, true);
}

static void plug_netdev_added(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (err || !d) {
		plug_undo(o, "netdev_add", err);
		return;
	}
	o->netdev = true;
	xn_net_taps_free(o->tap, 1); /* QEMU holds the tap now */
	o->tap = NULL;
	xn_error *e = NULL;
	xn_qemu_nic nic = {.vif = xn_db_get(o->hp.h->db, o->hp.ref), .fd = 3};
	json_t *dev = xn_qemu_nic_device(&nic, o->hp.port, &e);
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
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (err || !d) {
		plug_undo(o, "getfd", err);
		return;
	}
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->hp.device);
	XN_AUTOFREE char *fdname = xn_asprintf("vif-%s", o->hp.device);
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
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (!d || !d->qmp) {
		xn_hotplug_end(&o->hp, qmp_error(o, "getfd", NULL));
		return;
	}
	XN_AUTOFREE char *fdname = xn_asprintf("vif-%s", o->hp.device);
	xn_qmp_send_fd(d->qmp, o->tap->fd, fdname, plug_got_fd, o);
}

/* The port is known (xn_hotplug_find_port): first drop a netdev a failed
 * plug may have left under our name. */
static void plug_port_found(xn_hotplug_op *hp)
{
	struct vif_op *o = (struct vif_op *)hp;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->hp.device);
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
	struct vif_op *o = op_new(c, "plug", vif);
	o->tap = xn_calloc(1, sizeof(*o->tap));
	if (xn_net_vif_tap(h, o->hp.vm, vif, o->tap, &err) < 0 ||
	    xn_vif_apply_qos(h, vif, o->tap->name, &err) < 0) {
		xn_hotplug_end(&o->hp, err);
		return;
	}
	xn_hotplug_find_port(d, &o->hp);
}

/* ---- VIF.unplug ----------------------------------------------------------- */

static void unplug_netdev_deleted(void *ud, json_t *ret, const xn_error *err)
{
	struct vif_op *o = ud;
	(void)ret;
	if (err)
		xn_warn("vif: VM %s: %s", xn_db_str(o->hp.h->db, o->hp.vm, "uuid"), err->message);
	xn_info("vif: VM %s: NIC %s unplugged", xn_db_str(o->hp.h->db, o->hp.vm, "uuid"),
		o->hp.device);
	/* its tap is going with QEMU's descriptor; so goes its rate limit */
	XN_AUTOFREE char *tap = xn_net_tap_name(xn_db_str(o->hp.h->db, o->hp.vm, "uuid"),
						o->hp.device);
	xn_nl_rate_limit_drop(tap, NULL);
	commit_attached(o, false);
}

/* The device is gone (DEVICE_DELETED): drop its netdev (QEMU closes
 * the tap), record it detached. */
static void unplug_gone(xn_hotplug_op *hp)
{
	struct vif_op *o = (struct vif_op *)hp;
	struct dom *d = xn_dom_find(o->hp.h, o->hp.vm);
	if (!d) {
		commit_attached(o, false);
		return;
	}
	XN_AUTOFREE char *id = xn_asprintf("net-%s", o->hp.device);
	xn_dom_qmp(d, "netdev_del", json_pack("{s:s}", "id", id), unplug_netdev_deleted, o);
}

void xn_vif_device_deleted(struct dom *d, const char *dev)
{
	xn_hotplug_device_deleted(&vif_kind, d, dev);
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
	xn_hotplug_unplug(d, &op_new(c, "unplug", vif)->hp);
}

static const xn_hotplug_kind vif_kind = {
	.cls = "VIF",
	.id = "vif",
	.device_field = "device",
	.vm_field = "VIFs",
	.noun = "NIC",
	.spares = "devices (disks and NICs)",
	.size = sizeof(struct vif_op),
	.missing_is_stale = true,
	.port_found = plug_port_found,
	.gone = unplug_gone,
	.free = vif_op_free,
};

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
