/* net.c: networks and VIFs (net.h). */
#include "net/net.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "net/netlink.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/vm.h"

#define XN_NET_MAX_VIFS 16  /* devices 0..15 per VM */

/* ---- names ------------------------------------------------------------- */

static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 15)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return true;
}

char *xn_net_tap_name(const char *vm_uuid, const char *device)
{
	return xn_asprintf("vif%.8s.%s", vm_uuid, device);
}

char *xn_net_free_bridge_name(xn_host *h)
{
	json_t *all = xn_db_all(h->db, xn_model_class("network"));
	for (int n = 0;; n++) {
		XN_AUTOFREE char *name = xn_asprintf("xapi%d", n);
		bool used = xn_nl_link_exists(name);
		const char *k;
		json_t *v;
		json_object_foreach(all, k, v)
			used |= xn_streq(json_string_value(json_object_get(v, "bridge")), name);
		if (!used)
			return xn_steal(&name);
	}
}

/* ---- MAC addresses ------------------------------------------------------------ */

/* "aa:bb:cc:dd:ee:ff", lowercased in place; a unicast address. */
static bool mac_ok(char *mac)
{
	unsigned b[6];
	char tail;
	if (strlen(mac) != 17 ||
	    sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return false;
	for (char *p = mac; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	bool zero = !(b[0] | b[1] | b[2] | b[3] | b[4] | b[5]);
	return !(b[0] & 1) && !zero;
}

/* The VIF that has mac, or NULL. */
static const char *vif_with_mac(xn_host *h, const char *mac)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VIF")), k, v)
		if (strcasecmp(json_string_value(json_object_get(v, "MAC")) ?: "", mac) == 0)
			return k;
	return NULL;
}

char *xn_net_new_mac(xn_host *h)
{
	for (;;) {
		unsigned char b[6];
		if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
			abort(); /* the kernel's entropy is there from boot on */
		b[0] = (unsigned char)((b[0] & 0xfc) | 0x02);
		char *mac = xn_asprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3],
					b[4], b[5]);
		if (!vif_with_mac(h, mac))
			return mac;
		free(mac);
	}
}

/* ---- network.create, network.destroy ------------------------------------------ */

static void network_create(xn_call *c)
{
	xn_host *h = c->host;
	json_t *args = xn_call_arg(c, 0);
	if (!json_is_object(args)) {
		xn_call_fail_code(c, "FIELD_TYPE_ERROR", "args", NULL);
		return;
	}
	xn_error *bad = NULL;
	if (xn_nat_check(json_object_get(args, "other_config"), &bad) < 0) {
		xn_call_fail(c, bad);
		return;
	}
	const char *bridge = json_string_value(json_object_get(args, "bridge"));
	if (bridge && bridge[0]) {
		if (!ifname_ok(bridge)) {
			xn_call_fail_code(c, "INVALID_VALUE", "bridge", bridge, NULL);
			return;
		}
		const char *k;
		json_t *v;
		json_object_foreach(xn_db_all(h->db, xn_model_class("network")), k, v) {
			if (xn_streq(json_string_value(json_object_get(v, "bridge")), bridge)) {
				xn_call_fail_code(c, "INVALID_VALUE", "bridge", bridge, NULL);
				return;
			}
		}
	} else {
		/* made now, not when first used: the name is then taken for any
		 * other daemon or tool on this host choosing one */
		XN_AUTOFREE char *name = xn_net_free_bridge_name(h);
		xn_error *err = NULL;
		if (xn_nl_bridge_add(name, &err) < 0) {
			xn_call_fail(c, err);
			return;
		}
		json_object_set_new(args, "bridge", json_string(name));
	}
	XN_AUTOFREE char *made = xn_strdup(json_string_value(json_object_get(args, "bridge")));
	xn_accessor_call(c, xn_model_class("network"), "create");
	xn_nat_bridge_made(h, made);
}

/* Whether Xenia made this network's bridge (and so removes it). */
static bool own_bridge(xn_host *h, const char *net)
{
	const char *bridge = xn_db_str(h->db, net, "bridge");
	return xn_db_bool(h->db, net, "managed") &&
	       (xn_str_has_prefix(bridge, "xapi") || xn_str_has_prefix(bridge, "xenbr"));
}

static void network_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *net = xn_call_arg_str(c, 0);
	if (xn_db_class_of(h->db, net) != xn_model_class("network")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "network", net, NULL);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, net, "VIFs"), i, v) {
		xn_call_fail_code(c, "NETWORK_CONTAINS_VIF", json_string_value(v), NULL);
		return;
	}
	json_array_foreach(xn_db_field(h->db, net, "PIFs"), i, v) {
		xn_call_fail_code(c, "NETWORK_CONTAINS_PIF", json_string_value(v), NULL);
		return;
	}
	XN_AUTOFREE char *bridge = xn_strdup(xn_db_str(h->db, net, "bridge"));
	bool own = own_bridge(h, net);
	json_t *nat = xn_nat_config(h, net);
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_delete(cs, net);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		json_decref(nat);
		xn_call_fail(c, err);
		return;
	}
	xn_nat_down(h, bridge, nat);
	if (own && xn_nl_link_del(bridge, &err) < 0) {
		xn_warn("net: cannot remove bridge %s: %s", bridge, err->message);
		xn_error_free(err);
	}
	xn_call_return(c, NULL);
}

/* ---- VIF.create, VIF.destroy --------------------------------------------- */

/* VIF.create with a generated MAC: the generic create keeps only the
 * constructor's fields, so MAC_autogenerated is set once it is made. */
struct created {
	xn_host *h;
	xn_call_done done;
	void *ud;
};

static void vif_created(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	struct created *k = ud;
	const char *ref = json_string_value(result);
	if (!err && ref && xn_db_get(k->h->db, ref))
		xn_db_set(k->h->db, ref, "MAC_autogenerated", json_true(), NULL);
	k->done(k->ud, result, type, err);
	free(k);
}

static void vif_create(xn_call *c)
{
	xn_host *h = c->host;
	json_t *args = xn_call_arg(c, 0);
	if (!json_is_object(args)) {
		xn_call_fail_code(c, "FIELD_TYPE_ERROR", "args", NULL);
		return;
	}
	const char *vm = json_string_value(json_object_get(args, "VM"));
	const char *net = json_string_value(json_object_get(args, "network"));
	const char *dev = json_string_value(json_object_get(args, "device"));
	if (!vm || xn_db_class_of(h->db, vm) != xn_model_class("VM")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "VM", vm ? vm : "", NULL);
		return;
	}
	if (!net || xn_db_class_of(h->db, net) != xn_model_class("network")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "network", net ? net : "", NULL);
		return;
	}
	xn_error *err = NULL;
	if (xn_vm_device_free(h, vm, "VIFs", "device", dev, XN_NET_MAX_VIFS - 1, "device", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	const char *given = json_string_value(json_object_get(args, "MAC"));
	if (given && given[0]) {
		XN_AUTOFREE char *mac = xn_strdup(given);
		if (!mac_ok(mac)) {
			xn_call_fail_code(c, "MAC_INVALID", given, NULL);
			return;
		}
		const char *other = vif_with_mac(h, mac);
		if (other) {
			XN_AUTOFREE char *why = xn_asprintf("%s is the MAC of VIF %s", mac,
							    xn_db_str(h->db, other, "uuid"));
			xn_call_fail_code(c, "INVALID_VALUE", "MAC", why, NULL);
			return;
		}
		json_object_set_new(args, "MAC", json_string(mac));
	} else {
		XN_AUTOFREE char *mac = xn_net_new_mac(h);
		json_object_set_new(args, "MAC", json_string(mac));
		struct created *k = xn_calloc(1, sizeof(*k));
		*k = (struct created){.h = h, .done = c->done, .ud = c->done_ud};
		c->done = vif_created;
		c->done_ud = k;
	}
	if (!json_integer_value(json_object_get(args, "MTU")))
		json_object_set_new(args, "MTU", json_integer(xn_db_int(h->db, net, "MTU")
								      ?: 1500));
	xn_accessor_call(c, xn_model_class("VIF"), "create");
}

static void vif_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *vif = xn_call_arg_str(c, 0);
	if (xn_db_class_of(h->db, vif) == xn_model_class("VIF") &&
	    xn_db_bool(h->db, vif, "currently_attached")) {
		xn_call_fail_code(c, "OPERATION_NOT_ALLOWED",
				  "the VIF is plugged into a running VM: unplug it first", NULL);
		return;
	}
	xn_accessor_call(c, xn_model_class("VIF"), "destroy");
}

static const xn_api_method net_methods[] = {
	{"network.create", network_create},
	{"network.destroy", network_destroy},
	{"VIF.create", vif_create},
	{"VIF.destroy", vif_destroy},
	{NULL, NULL},
};

extern const xn_api_method xn_pif_methods[];
extern const xn_api_method xn_vlan_bond_methods[];

void xn_net_register(xn_api *api)
{
	xn_api_register(api, net_methods);
	xn_api_register(api, xn_pif_methods);
	xn_api_register(api, xn_vlan_bond_methods);
}

int xn_net_init(xn_host *h, xn_error **err)
{
	XN_AUTOERR xn_error *e = NULL;
	int n = xn_nl_rate_limit_sweep(&e); /* what taps gone since the last run left */
	if (n < 0)
		xn_warn("net: ingress rate limits of gone taps not removed: %s", e->message);
	else if (n > 0)
		xn_info("net: removed the ingress rate limits of %d gone taps", n);
	if (json_array_size(xn_db_field(h->db, h->host_ref, "PIFs")) == 0 &&
	    xn_pif_scan(h, err) < 0)
		return -1;
	return xn_vlan_bond_init(h, err);
}

/* ---- taps for a VM's start ------------------------------------------------------ */

void xn_net_copy_vifs(xn_host *h, xn_changes *cs, const char *from, const char *to,
		      bool same_macs)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, from, "VIFs"), i, v) {
		json_t *rec = json_deep_copy(xn_db_get(h->db, json_string_value(v)));
		static const char *reset[] = {"uuid", "current_operations", "allowed_operations",
					      "metrics", "runtime_properties", NULL};
		for (size_t k = 0; reset[k]; k++)
			json_object_del(rec, reset[k]);
		json_object_set_new(rec, "VM", json_string(to));
		json_object_set_new(rec, "currently_attached", json_false());
		if (!same_macs) {
			XN_AUTOFREE char *mac = xn_net_new_mac(h);
			json_object_set_new(rec, "MAC", json_string(mac));
			json_object_set_new(rec, "MAC_autogenerated", json_true());
		}
		xn_changes_add(cs, xn_model_class("VIF"), NULL, rec);
	}
}

void xn_net_taps_free(xn_net_tap *taps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (taps[i].fd >= 0)
			close(taps[i].fd);
		free(taps[i].vif);
		free(taps[i].name);
	}
	free(taps);
}

int xn_net_vif_tap(xn_host *h, const char *vm_ref, const char *vif, xn_net_tap *t,
		   xn_error **err)
{
	const char *net = xn_db_str(h->db, vif, "network");
	const char *bridge = xn_db_str(h->db, net, "bridge");
	t->fd = -1;
	t->vif = xn_strdup(vif);
	t->name = xn_net_tap_name(xn_db_str(h->db, vm_ref, "uuid"), xn_db_str(h->db, vif, "device"));
	if (!bridge[0])
		return xn_fail(err, "INVALID_VALUE", "network bridge", xn_db_str(h->db, net, "uuid"),
			       NULL);
	if ((!xn_nl_link_exists(bridge) && xn_nl_bridge_add(bridge, err) < 0) ||
	    xn_nl_link_set_up(bridge, true, err) < 0 || xn_nat_up(h, net, err) < 0 ||
	    xn_nl_tap_open(t->name, &t->fd, err) < 0 ||
	    xn_nl_link_set_master(t->name, bridge, err) < 0 ||
	    xn_nl_link_set_up(t->name, true, err) < 0)
		return -1;
	return 0;
}

int xn_net_vm_taps(xn_host *h, const char *vm_ref, xn_net_tap **taps, size_t *n,
		   xn_error **err)
{
	json_t *vifs = xn_db_field(h->db, vm_ref, "VIFs");
	xn_net_tap *t = xn_calloc(json_array_size(vifs) + 1, sizeof(*t));
	size_t k = 0, i;
	json_t *v;
	json_array_foreach(vifs, i, v) {
		if (xn_net_vif_tap(h, vm_ref, json_string_value(v), &t[k++], err) < 0) {
			xn_net_taps_free(t, k);
			return -1;
		}
	}
	*taps = t;
	*n = k;
	return 0;
}
