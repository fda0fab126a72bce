/* vlan_bond.c: VLAN.create/destroy and Bond.create/destroy, and keeping
 * bonds steered as their members' links come and go.
 *
 * A VLAN is an eBPF port (bpf_port.h) "<pif device>.<tag>" on the tagged
 * PIF, recorded as a new (untagged) PIF of the network it serves and put
 * in that network's bridge. A bond in mode active-backup or balance-slb
 * is an eBPF port "bond<N>" over its member NICs, recorded as the master
 * PIF of the network; its members' PIFs point at it, and a link watch
 * (linkwatch.c) re-steers it when a member's carrier changes. A bond in
 * mode lacp needs the kernel's bonding driver (802.3ad): there is no LACP
 * speaker here. Everything is checked before the host is touched, and a
 * failure leaves nothing behind: no device, no record. */
#include "net/net.h"

#include <stdlib.h>
#include <string.h>

#include "net/bpf_port.h"
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

/* The device name of the VLAN's port: "<dev>.<tag>" when it fits (with
 * room for the "w" of its wire end), else "vlan<tag>.<n>". */
static char *vlan_name(const char *dev, int tag)
{
	char *name = xn_asprintf("%s.%d", dev, tag);
	if (strlen(name) <= 14)
		return name;
	free(name);
	for (int n = 0;; n++) {
		name = xn_asprintf("vlan%d.%d", tag, n);
		if (!xn_nl_link_exists(name))
			return name;
		free(name);
	}
}

/* The wire end of port (caller frees). */
static char *wire_name(const char *port)
{
	return xn_asprintf("%sw", port);
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
	XN_AUTOFREE char *dev = xn_strdup(xn_db_str(h->db, pif, "device"));
	XN_AUTOFREE char *name = vlan_name(dev, (int)tag);
	XN_AUTOFREE char *wire = wire_name(name);
	xn_error *err = NULL;
	if (xn_bpf_port_vlan(name, wire, dev, (int)tag, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	if (into_bridge(h, net, name, &err) < 0) {
		xn_bpf_port_vlan_del(name, dev, (int)tag, NULL);
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
		xn_bpf_port_vlan_del(name, dev, (int)tag, NULL);
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
 * network; else its device goes (remove() on obj), then the records (obj,
 * its PIF, what `more` adds). */
static void remove_device(xn_call *c, const char *obj, const char *pif,
			  int (*remove)(xn_host *h, const char *obj, xn_error **err),
			  void (*more)(xn_host *h, xn_changes *cs, const char *obj))
{
	xn_host *h = c->host;
	const char *net = xn_db_str(h->db, pif, "network");
	if (network_in_use(h, net)) {
		xn_call_fail_code(c, "VIF_IN_USE", net, pif, NULL);
		return;
	}
	xn_error *err = NULL;
	if (remove(h, obj, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	if (more)
		more(h, cs, obj);
	xn_changes_delete(cs, pif);
	xn_changes_delete(cs, obj);
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_call_return(c, NULL);
}

/* The tagged NIC, tag and port of a VLAN record. */
static void vlan_parts(xn_host *h, const char *vlan, const char **nic, int *tag,
		       const char **port)
{
	*nic = xn_db_str(h->db, xn_db_str(h->db, vlan, "tagged_PIF"), "device");
	*tag = (int)xn_db_int(h->db, vlan, "tag");
	*port = xn_db_str(h->db, xn_db_str(h->db, vlan, "untagged_PIF"), "device");
}

static int vlan_remove(xn_host *h, const char *vlan, xn_error **err)
{
	const char *nic, *port;
	int tag;
	vlan_parts(h, vlan, &nic, &tag, &port);
	return xn_bpf_port_vlan_del(port, nic, tag, err);
}

static void vlan_destroy(xn_call *c)
{
	const char *vlan = xn_call_arg_str(c, 0);
	if (!is_class(c->host, vlan, "VLAN")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "VLAN", vlan ? vlan : "", NULL);
		return;
	}
	remove_device(c, vlan, xn_db_str(c->host->db, vlan, "untagged_PIF"), vlan_remove, NULL);
}

/* ---- bonds ------------------------------------------------------------------------ */

static bool mode_known(const char *mode)
{
	return strcmp(mode, "balance-slb") == 0 || strcmp(mode, "active-backup") == 0 ||
	       strcmp(mode, "lacp") == 0;
}

/* A bond as bpf_port.h sees it: its port, wire end and members' devices
 * (the primary first, then the others by device name); names owns the
 * strings (xn_strv_free after use). */
typedef struct bond_view {
	xn_bpf_bond b;
	char **names; /* port, wire, members... */
} bond_view;

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void bond_view_of(xn_host *h, const char *bond, bond_view *v)
{
	const char *port = xn_db_str(h->db, xn_db_str(h->db, bond, "master"), "device");
	const char *primary = xn_db_str(h->db, bond, "primary_slave");
	json_t *slaves = xn_db_field(h->db, bond, "slaves");
	size_t n = json_array_size(slaves), k = 3, i;
	json_t *m;
	v->names = xn_calloc(n + 4, sizeof(char *));
	v->names[0] = xn_strdup(port);
	v->names[1] = wire_name(port);
	v->names[2] = xn_strdup(xn_db_str(h->db, primary, "device"));
	json_array_foreach(slaves, i, m)
		if (!xn_streq(json_string_value(m), primary))
			v->names[k++] = xn_strdup(xn_db_str(h->db, json_string_value(m), "device"));
	qsort(v->names + 3, k - 3, sizeof(char *), by_name);
	v->b = (xn_bpf_bond){.port = v->names[0],
			     .wire = v->names[1],
			     .members = (const char *const *)v->names + 2,
			     .n = k - 2,
			     .balance = xn_streq(xn_db_str(h->db, bond, "mode"), "balance-slb")};
}

/* Which members have a carrier, from the host's links. */
static void members_live(json_t *links, const xn_bpf_bond *b, bool *live)
{
	for (size_t i = 0; i < b->n; i++) {
		size_t k;
		json_t *l;
		live[i] = false;
		json_array_foreach(links, k, l)
			if (xn_streq(json_string_value(json_object_get(l, "name")), b->members[i]))
				live[i] = json_is_true(json_object_get(l, "carrier"));
	}
}

/* What each bond was last steered by ("1,0,1": which members were live),
 * by bond ref, so that a link event re-steers only the bonds it changed. */
static json_t *steered;

/* Steer bond by its members' carriers (if they changed since last time,
 * or always when force), and keep its links_up true. */
static int bond_steer(xn_host *h, const char *bond, json_t *links, bool force, xn_error **err)
{
	if (xn_streq(xn_db_str(h->db, bond, "mode"), "lacp"))
		return 0; /* the kernel's bond watches its own links */
	bond_view v;
	bond_view_of(h, bond, &v);
	bool live[v.b.n];
	members_live(links, &v.b, live);
	xn_buf key = {0};
	int up = 0, active = -1, rc = 0;
	for (size_t i = 0; i < v.b.n; i++) {
		xn_buf_printf(&key, "%s%d", i ? "," : "", live[i]);
		up += live[i];
	}
	if (!steered)
		steered = json_object();
	XN_AUTOFREE char *k = xn_buf_steal(&key);
	if (force || !xn_streq(json_string_value(json_object_get(steered, bond)), k)) {
		rc = xn_bpf_port_bond(&v.b, live, &active, err);
		if (rc == 0) {
			json_object_set_new(steered, bond, json_string(k));
			bool ab = active >= 0 && !v.b.balance;
			xn_info("net: bond %s: %d of %zu links up%s%s", v.b.port, up, v.b.n,
				ab ? ", active " : "", ab ? v.b.members[active] : "");
		}
	}
	if (rc == 0 && xn_db_int(h->db, bond, "links_up") != up) {
		xn_changes *cs = xn_changes_new(h->db);
		xn_changes_set(cs, bond, "links_up", json_integer(up));
		rc = xn_db_commit(h->db, cs, err);
	}
	xn_strv_free(v.names);
	return rc;
}

/* Steer every bond (force: whatever was done before). */
static int bonds_steer(xn_host *h, bool force, xn_error **err)
{
	json_t *bonds = xn_db_all(h->db, xn_model_class("Bond"));
	if (json_object_size(bonds) == 0)
		return 0;
	json_auto_t *links = xn_nl_links(err);
	if (!links)
		return -1;
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach(bonds, k, v) {
		XN_AUTOERR xn_error *e = NULL;
		if (bond_steer(h, k, links, force, &e) < 0) {
			xn_warn("net: bond %s not steered: %s", k, e->message);
			rc = -1;
		}
	}
	return rc < 0 ? xn_fail_internal(err, "net: a bond could not be steered (see the log)")
		      : 0;
}

static void links_changed(xn_host *h)
{
	XN_AUTOERR xn_error *e = NULL;
	bonds_steer(h, false, &e);
}

/* A new bond's device: an eBPF port, or for lacp a kernel bond with the
 * members in it. */
static int bond_make(xn_host *h, const char *mode, const char *name, json_t *members,
		     xn_error **err)
{
	size_t i, n = json_array_size(members);
	json_t *m;
	if (!xn_streq(mode, "lacp")) {
		XN_AUTOFREE char *wire = wire_name(name);
		const char *devs[n];
		bool live[n];
		int active;
		json_array_foreach(members, i, m)
			devs[i] = xn_db_str(h->db, json_string_value(m), "device");
		xn_bpf_bond b = {.port = name, .wire = wire, .members = devs, .n = n,
				 .balance = xn_streq(mode, "balance-slb")};
		json_auto_t *links = xn_nl_links(err);
		if (!links)
			return -1;
		members_live(links, &b, live);
		if (xn_bpf_port_bond(&b, live, &active, err) < 0) {
			xn_bpf_port_bond_del(&b, NULL);
			return -1;
		}
		return 0;
	}
	if (xn_nl_bond_add(name, "802.3ad", err) < 0)
		return -1;
	json_array_foreach(members, i, m) {
		if (xn_nl_link_set_master(xn_db_str(h->db, json_string_value(m), "device"), name,
					  err) < 0) {
			xn_nl_link_del(name, NULL); /* its ports are released */
			return -1;
		}
	}
	return 0;
}

static int bond_remove(xn_host *h, const char *bond, xn_error **err)
{
	if (steered)
		json_object_del(steered, bond);
	if (xn_streq(xn_db_str(h->db, bond, "mode"), "lacp"))
		return xn_nl_link_del(xn_db_str(h->db, xn_db_str(h->db, bond, "master"), "device"),
				      err);
	bond_view v;
	bond_view_of(h, bond, &v);
	int rc = xn_bpf_port_bond_del(&v.b, err);
	xn_strv_free(v.names);
	return rc;
}

/* Bond.create's checks of one member PIF: 0, or -1 having failed c. */
static int member_check(xn_call *c, json_t *members, size_t i)
{
	xn_host *h = c->host;
	const char *pif = json_string_value(json_array_get(members, i));
	if (!is_class(h, pif, "PIF"))
		return xn_call_fail_code(c, "HANDLE_INVALID", "PIF", pif ? pif : "", NULL), -1;
	for (size_t j = 0; j < i; j++)
		if (xn_streq(json_string_value(json_array_get(members, j)), pif))
			return xn_call_fail_code(c, "INVALID_VALUE", "members", pif, NULL), -1;
	if (!xn_ref_is_null(xn_db_str(h->db, pif, "bond_slave_of")) ||
	    xn_db_bool(h->db, pif, "currently_attached"))
		return xn_call_fail_code(c, "PIF_ALREADY_BONDED", pif, NULL), -1;
	if (!xn_db_bool(h->db, pif, "physical") || xn_db_int(h->db, pif, "VLAN") >= 0 ||
	    json_array_size(xn_db_field(h->db, pif, "VLAN_slave_of")) > 0)
		return xn_call_fail_code(c, "PIF_IS_VLAN", pif, NULL), -1;
	return 0;
}

/* Bond.create's checks, all before anything is made: 0, or -1 having
 * failed c. */
static int bond_check(xn_call *c, const char *net, json_t *members, const char *mode)
{
	xn_host *h = c->host;
	if (!is_class(h, net, "network"))
		return xn_call_fail_code(c, "HANDLE_INVALID", "network", net ? net : "", NULL), -1;
	if (!mode_known(mode))
		return xn_call_fail_code(c, "INVALID_VALUE", "mode", mode, NULL), -1;
	if (json_array_size(members) < 2)
		return xn_call_fail_code(c, "PIF_BOND_NEEDS_MORE_MEMBERS", NULL), -1;
	if (network_has_pif(h, net)) {
		json_t *pifs = xn_db_field(h->db, net, "PIFs");
		xn_call_fail_code(c, "NETWORK_ALREADY_CONNECTED", net,
				  json_string_value(json_array_get(pifs, 0)), NULL);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(members); i++)
		if (member_check(c, members, i) < 0)
			return -1;
	return 0;
}

/* The lowest "bond<N>" no link has (caller frees). */
static char *bond_name(void)
{
	for (int n = 0;; n++) {
		char *name = xn_asprintf("bond%d", n);
		if (!xn_nl_link_exists(name))
			return name;
		free(name);
	}
}

static void bond_create(xn_call *c)
{
	xn_host *h = c->host;
	const char *net = xn_call_arg_str(c, 0);
	json_t *members = xn_call_arg(c, 1);
	const char *mac = xn_call_arg_str(c, 2);
	const char *mode = xn_call_arg_str(c, 3);
	if (!mode || !mode[0])
		mode = "balance-slb";
	if (bond_check(c, net, members, mode) < 0)
		return;
	XN_AUTOFREE char *name = bond_name();
	xn_error *err = NULL;
	if (bond_make(h, mode, name, members, &err) < 0 || into_bridge(h, net, name, &err) < 0) {
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
			  mode, "links_up", 0, "other_config")));
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m)
		xn_changes_set(cs, json_string_value(m), "bond_slave_of", json_string(bond));
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_nl_link_del(name, NULL);
		xn_call_fail(c, err);
		return;
	}
	xn_info("net: bond %s (%s) of %zu NICs", name, mode, json_array_size(members));
	json_auto_t *links = xn_nl_links(NULL);
	if (links)
		bond_steer(h, bond, links, true, NULL); /* and its links_up */
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
	remove_device(c, bond, xn_db_str(c->host->db, bond, "master"), bond_remove, free_members);
}

/* ---- at daemon start -------------------------------------------------------------- */

/* A VLAN whose port or filter is gone (a host reboot) is made again. */
static void vlan_restore(xn_host *h, const char *vlan)
{
	const char *nic, *port;
	int tag;
	vlan_parts(h, vlan, &nic, &tag, &port);
	if (xn_nl_link_exists(port) && xn_bpf_port_attached(nic, tag))
		return;
	const char *net = xn_db_str(h->db, xn_db_str(h->db, vlan, "untagged_PIF"), "network");
	XN_AUTOFREE char *wire = wire_name(port);
	XN_AUTOERR xn_error *e = NULL;
	if (xn_bpf_port_vlan(port, wire, nic, tag, &e) < 0 || into_bridge(h, net, port, &e) < 0)
		xn_warn("net: VLAN %d on %s not restored: %s", tag, nic, e->message);
	else
		xn_info("net: VLAN %d on %s restored as %s", tag, nic, port);
}

int xn_vlan_bond_init(xn_host *h, xn_error **err)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VLAN")), k, v)
		vlan_restore(h, k);
	XN_AUTOERR xn_error *e = NULL;
	if (bonds_steer(h, true, &e) < 0)
		xn_warn("%s", e->message);
	return xn_linkwatch_start(h, links_changed, err);
}

const xn_api_method xn_vlan_bond_methods[] = {
	{"VLAN.create", vlan_create},
	{"VLAN.destroy", vlan_destroy},
	{"Bond.create", bond_create},
	{"Bond.destroy", bond_destroy},
	{NULL, NULL},
};
