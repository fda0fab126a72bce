/* vlan_bond.c: VLAN.create/destroy and Bond.create/destroy.
 *
 * A VLAN is a kernel VLAN device "<pif device>.<tag>" on the tagged PIF,
 * recorded as a new (untagged) PIF of the network it serves and put in
 * that network's bridge. A bond is a kernel bond device "bond<N>" with
 * the member NICs in it, recorded as the master PIF of the network; its
 * members' PIFs point at it. Everything is checked before the host is
 * touched, and a kernel refusal (a kernel built without 8021q or bonding
 * support, as some are) leaves nothing behind: no device, no record. */
#include "net/net.h"

#include <stdlib.h>
#include <string.h>

#include "net/netlink.h"
#include "util/log.h"
#include "util/uuid.h"

static bool network_has_pif(xn_host *h, const char *net)
{
	return json_array_size(xn_db_field(h->db, net, "PIFs")) > 0;
}

static bool is_class(xn_host *h, const char *ref, const char *cls)
{
	return ref && xn_db_class_of(h->db, ref) == xn_model_class(cls);
}

/* The device name of the VLAN: "<dev>.<tag>" when it fits, else
 * "vlan<tag>.<n>". */
static char *vlan_name(const char *dev, int tag)
{
	char *name = xn_asprintf("%s.%d", dev, tag);
	if (strlen(name) <= 15)
		return name;
	free(name);
	for (int n = 0;; n++) {
		name = xn_asprintf("vlan%d.%d", tag, n);
		if (!xn_nl_link_exists(name))
			return name;
		free(name);
	}
}

/* A new PIF record for device on net, in cs (borrowed ref). */
static const char *add_pif(xn_host *h, xn_changes *cs, const char *device, const char *net,
			   const char *mac, int vlan)
{
	return xn_changes_add(cs, xn_model_class("PIF"), NULL,
			      json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:b,s:b}", "device", device,
					"network", net, "host", h->host_ref, "MAC", mac, "MTU",
					xn_db_int(h->db, net, "MTU") ?: 1500, "VLAN", vlan, "physical",
					0, "currently_attached", 1));
}

/* Make sure net's bridge exists and put device in it. */
static int into_bridge(xn_host *h, const char *net, const char *device, xn_error **err)
{
	const char *bridge = xn_db_str(h->db, net, "bridge");
	return xn_nl_bridge_add(bridge, err) < 0 || xn_nl_link_set_master(device, bridge, err) < 0 ||
			       xn_nl_link_set_up(device, true, err) < 0
		       ? -1
		       : 0;
}

/* ---- VLANs --------------------------------------------------------------------- */

static void vlan_create(xn_call *c)
{
	xn_host *h = c->host;
	const char *pif = xn_call_arg_str(c, 0);
	json_int_t tag = json_integer_value(xn_call_arg(c, 1));
	const char *net = xn_call_arg_str(c, 2);
	XN_AUTOFREE char *tag_s = xn_asprintf("%lld", (long long)tag);
	if (!is_class(h, pif, "PIF")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "PIF", pif ? pif : "", NULL);
		return;
	}
	if (!is_class(h, net, "network")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "network", net ? net : "", NULL);
		return;
	}
	if (tag < 1 || tag > 4094) {
		xn_call_fail_code(c, "VLAN_TAG_INVALID", tag_s, NULL);
		return;
	}
	if (xn_db_int(h->db, pif, "VLAN") >= 0) {
		xn_call_fail_code(c, "PIF_IS_VLAN", pif, NULL);
		return;
	}
	if (!xn_ref_is_null(xn_db_str(h->db, pif, "bond_slave_of"))) {
		xn_call_fail_code(c, "CANNOT_ADD_VLAN_TO_BOND_SLAVE", pif, NULL);
		return;
	}
	if (network_has_pif(h, net)) {
		xn_call_fail_code(c, "NETWORK_ALREADY_CONNECTED", net,
				  json_string_value(json_array_get(xn_db_field(h->db, net, "PIFs"), 0)),
				  NULL);
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VLAN")), k, v) {
		if (xn_streq(json_string_value(json_object_get(v, "tagged_PIF")), pif) &&
		    json_integer_value(json_object_get(v, "tag")) == tag) {
			xn_call_fail_code(c, "PIF_VLAN_EXISTS", pif, NULL);
			return;
		}
	}
	const char *dev = xn_db_str(h->db, pif, "device");
	XN_AUTOFREE char *name = vlan_name(dev, (int)tag);
	xn_error *err = NULL;
	if (xn_nl_vlan_add(name, dev, (int)tag, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	if (into_bridge(h, net, name, &err) < 0) {
		xn_nl_link_del(name, NULL);
		xn_call_fail(c, err);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	const char *untagged = add_pif(h, cs, name, net, xn_db_str(h->db, pif, "MAC"), (int)tag);
	XN_AUTOFREE char *vlan = xn_strdup(xn_changes_add(
		cs, xn_model_class("VLAN"), NULL,
		json_pack("{s:s,s:s,s:I,s:{}}", "tagged_PIF", pif, "untagged_PIF", untagged, "tag",
			  tag, "other_config")));
	xn_changes_set(cs, untagged, "VLAN_master_of", json_string(vlan));
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_nl_link_del(name, NULL);
		xn_call_fail(c, err);
		return;
	}
	xn_info("net: VLAN %lld on %s is %s", (long long)tag, dev, name);
	xn_call_return(c, json_string(vlan));
}

/* Whether a VM that is not halted has a VIF on net. */
static bool network_in_use(xn_host *h, const char *net)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, net, "VIFs"), i, v)
		if (xn_db_bool(h->db, json_string_value(v), "currently_attached"))
			return true;
	return false;
}

/* The end of a VLAN or bond: refused while a running VM uses its
 * network; else the records go (obj, its PIF, what `more` adds), then
 * its device. */
static void remove_device(xn_call *c, const char *obj, const char *pif,
			  void (*more)(xn_host *h, xn_changes *cs, const char *obj))
{
	xn_host *h = c->host;
	const char *net = xn_db_str(h->db, pif, "network");
	if (network_in_use(h, net)) {
		xn_call_fail_code(c, "VIF_IN_USE", net, pif, NULL);
		return;
	}
	XN_AUTOFREE char *dev = xn_strdup(xn_db_str(h->db, pif, "device"));
	xn_changes *cs = xn_changes_new(h->db);
	if (more)
		more(h, cs, obj);
	xn_changes_delete(cs, pif);
	xn_changes_delete(cs, obj);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0 || xn_nl_link_del(dev, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_call_return(c, NULL);
}

static void vlan_destroy(xn_call *c)
{
	const char *vlan = xn_call_arg_str(c, 0);
	if (!is_class(c->host, vlan, "VLAN")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "VLAN", vlan ? vlan : "", NULL);
		return;
	}
	remove_device(c, vlan, xn_db_str(c->host->db, vlan, "untagged_PIF"), NULL);
}

/* ---- bonds ------------------------------------------------------------------------ */

static const char *kernel_mode(const char *mode)
{
	if (!mode || !mode[0] || strcmp(mode, "balance-slb") == 0)
		return "balance-tlb";
	if (strcmp(mode, "active-backup") == 0)
		return "active-backup";
	if (strcmp(mode, "lacp") == 0)
		return "802.3ad";
	return NULL;
}

static void bond_create(xn_call *c)
{
	xn_host *h = c->host;
	const char *net = xn_call_arg_str(c, 0);
	json_t *members = xn_call_arg(c, 1);
	const char *mac = xn_call_arg_str(c, 2);
	json_t *jmode = xn_call_arg(c, 3);
	const char *mode = json_is_string(jmode) ? json_string_value(jmode) : "balance-slb";
	if (!is_class(h, net, "network")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "network", net ? net : "", NULL);
		return;
	}
	if (!kernel_mode(mode)) {
		xn_call_fail_code(c, "INVALID_VALUE", "mode", mode, NULL);
		return;
	}
	if (json_array_size(members) < 2) {
		xn_call_fail_code(c, "PIF_BOND_NEEDS_MORE_MEMBERS", NULL);
		return;
	}
	if (network_has_pif(h, net)) {
		xn_call_fail_code(c, "NETWORK_ALREADY_CONNECTED", net,
				  json_string_value(json_array_get(xn_db_field(h->db, net, "PIFs"), 0)),
				  NULL);
		return;
	}
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m) {
		const char *pif = json_string_value(m);
		if (!is_class(h, pif, "PIF")) {
			xn_call_fail_code(c, "HANDLE_INVALID", "PIF", pif ? pif : "", NULL);
			return;
		}
		if (!xn_ref_is_null(xn_db_str(h->db, pif, "bond_slave_of"))) {
			xn_call_fail_code(c, "PIF_ALREADY_BONDED", pif, NULL);
			return;
		}
		if (!xn_db_bool(h->db, pif, "physical") || xn_db_int(h->db, pif, "VLAN") >= 0) {
			xn_call_fail_code(c, "PIF_IS_VLAN", pif, NULL);
			return;
		}
		if (xn_db_bool(h->db, pif, "currently_attached")) {
			xn_call_fail_code(c, "PIF_ALREADY_BONDED", pif, NULL);
			return;
		}
	}
	XN_AUTOFREE char *name = NULL;
	for (int n = 0; !name; n++) {
		char *try = xn_asprintf("bond%d", n);
		if (xn_nl_link_exists(try))
			free(try);
		else
			name = try;
	}
	xn_error *err = NULL;
	if (xn_nl_bond_add(name, kernel_mode(mode), &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	json_array_foreach(members, i, m) {
		if (xn_nl_link_set_master(xn_db_str(h->db, json_string_value(m), "device"), name,
					  &err) < 0) {
			xn_nl_link_del(name, NULL); /* its ports are released */
			xn_call_fail(c, err);
			return;
		}
	}
	if (into_bridge(h, net, name, &err) < 0) {
		xn_nl_link_del(name, NULL);
		xn_call_fail(c, err);
		return;
	}
	const char *first = json_string_value(json_array_get(members, 0));
	xn_changes *cs = xn_changes_new(h->db);
	const char *master = add_pif(h, cs, name, net,
				     mac && mac[0] ? mac : xn_db_str(h->db, first, "MAC"), -1);
	XN_AUTOFREE char *bond = xn_strdup(xn_changes_add(
		cs, xn_model_class("Bond"), NULL,
		json_pack("{s:s,s:s,s:s,s:i,s:{}}", "master", master, "primary_slave", first, "mode",
			  mode, "links_up", (int)json_array_size(members), "other_config")));
	json_array_foreach(members, i, m)
		xn_changes_set(cs, json_string_value(m), "bond_slave_of", json_string(bond));
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_nl_link_del(name, NULL);
		xn_call_fail(c, err);
		return;
	}
	xn_info("net: bond %s (%s) of %zu NICs", name, mode, json_array_size(members));
	xn_call_return(c, json_string(bond));
}

/* The members of a bond that goes are free again. */
static void free_members(xn_host *h, xn_changes *cs, const char *bond)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("PIF")), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "bond_slave_of")), bond))
			xn_changes_set(cs, k, "bond_slave_of", json_string(XN_NULL_REF));
}

static void bond_destroy(xn_call *c)
{
	const char *bond = xn_call_arg_str(c, 0);
	if (!is_class(c->host, bond, "Bond")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "Bond", bond ? bond : "", NULL);
		return;
	}
	remove_device(c, bond, xn_db_str(c->host->db, bond, "master"), free_members);
}

const xn_api_method xn_vlan_bond_methods[] = {
	{"VLAN.create", vlan_create},
	{"VLAN.destroy", vlan_destroy},
	{"Bond.create", bond_create},
	{"Bond.destroy", bond_destroy},
	{NULL, NULL},
};
