/* pif.c: the host's physical interfaces as PIF records, and external
 * networks (a PIF's bridge).
 *
 * PIF.scan records every interface that looks physical (no rtnetlink
 * kind; veth pairs count too, as tests use them for NICs) and has no
 * PIF yet, each with a network of its own whose bridge is "xenbr<N>", as
 * in XenServer. Records are all it makes: bridging a NIC is an explicit
 * PIF.plug, which creates the bridge, gives it the NIC's addresses,
 * puts the NIC in it and moves the NIC's routes over, in the order that
 * keeps the host reachable (addresses on the bridge before the NIC joins
 * it, routes after). PIF.unplug moves them back. The interface holding
 * the default route is the management PIF. */
#include "net/net.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/netlink.h"
#include "util/log.h"
#include "util/uuid.h"

static bool looks_physical(json_t *link)
{
	const char *name = json_string_value(json_object_get(link, "name"));
	const char *kind = json_string_value(json_object_get(link, "kind"));
	if (!name || strcmp(name, "lo") == 0 || xn_str_has_prefix(name, "vif"))
		return false;
	return !kind || !kind[0] || strcmp(kind, "veth") == 0;
}

static const char *pif_of_device(xn_host *h, const char *device)
{
	return xn_db_member_where(h->db, h->host_ref, "PIFs", "device", device);
}

/* Whether device is the wire end of a VLAN's or bond's port (bpf_port.h):
 * "<port>w" where port is a PIF that is not physical. */
static bool is_wire_end(xn_host *h, const char *device)
{
	size_t n = strlen(device);
	if (n < 2 || device[n - 1] != 'w')
		return false;
	XN_AUTOFREE char *port = xn_strndup(device, n - 1);
	const char *pif = pif_of_device(h, port);
	return pif && !xn_db_bool(h->db, pif, "physical");
}

static bool bridge_taken(json_t *nets, const char *name, const char *device)
{
	bool used = xn_nl_link_exists(name) && !xn_streq(device, name);
	const char *k;
	json_t *v;
	json_object_foreach(nets, k, v)
		used |= xn_streq(json_string_value(json_object_get(v, "bridge")), name);
	return used;
}

/* "xenbr<N>": N from the device's trailing number when free (eth0 ->
 * xenbr0), else the lowest free one. */
static char *bridge_for(xn_host *h, const char *device)
{
	json_t *nets = xn_db_all(h->db, xn_model_class("network"));
	const char *digits = device + strcspn(device, "0123456789");
	if (*digits && strspn(digits, "0123456789") == strlen(digits) && strlen(digits) < 6) {
		char *name = xn_asprintf("xenbr%s", digits);
		if (!bridge_taken(nets, name, device))
			return name;
		free(name);
	}
	for (int n = 0;; n++) {
		char *name = xn_asprintf("xenbr%d", n);
		if (!bridge_taken(nets, name, device))
			return name;
		free(name);
	}
}

/* The interface the default IPv4 route goes through, or NULL. */
static char *default_route_dev(json_t *links)
{
	size_t i;
	json_t *l;
	json_array_foreach(links, i, l) {
		const char *name = json_string_value(json_object_get(l, "name"));
		json_t *routes = xn_nl_routes(name, NULL);
		size_t j;
		json_t *r;
		bool has = false;
		json_array_foreach(routes, j, r)
			has |= xn_streq(json_string_value(json_object_get(r, "dst")), "default") &&
			       json_integer_value(json_object_get(r, "family")) == 4;
		json_decref(routes);
		if (has)
			return xn_strdup(name);
	}
	return NULL;
}

/* IP, netmask, gateway of dev's first IPv4 address into rec. */
static void ip_fields(json_t *rec, const char *dev)
{
	json_t *addrs = xn_nl_addrs(dev, NULL);
	size_t i;
	json_t *a;
	json_array_foreach(addrs, i, a) {
		if (json_integer_value(json_object_get(a, "family")) != 4)
			continue;
		int prefix = (int)json_integer_value(json_object_get(a, "prefix"));
		struct in_addr m = {.s_addr = prefix ? htonl(~0u << (32 - prefix)) : 0};
		char mask[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &m, mask, sizeof(mask));
		json_object_set(rec, "IP", json_object_get(a, "address"));
		json_object_set_new(rec, "netmask", json_string(mask));
		json_object_set_new(rec, "ip_configuration_mode", json_string("Static"));
		break;
	}
	json_decref(addrs);
	json_t *routes = xn_nl_routes(dev, NULL);
	json_array_foreach(routes, i, a)
		if (xn_streq(json_string_value(json_object_get(a, "dst")), "default") &&
		    json_is_string(json_object_get(a, "gateway")))
			json_object_set(rec, "gateway", json_object_get(a, "gateway"));
	json_decref(routes);
}

int xn_pif_scan(xn_host *h, xn_error **err)
{
	json_t *links = xn_nl_links(err);
	if (!links)
		return -1;
	XN_AUTOFREE char *mgmt = default_route_dev(links);
	xn_changes *cs = xn_changes_new(h->db);
	size_t i, added = 0;
	json_t *l;
	json_array_foreach(links, i, l) {
		const char *dev = json_string_value(json_object_get(l, "name"));
		if (!looks_physical(l) || pif_of_device(h, dev) || is_wire_end(h, dev))
			continue;
		XN_AUTOFREE char *bridge = bridge_for(h, dev);
		XN_AUTOFREE char *label = xn_asprintf("Pool-wide network associated with %s", dev);
		const char *net = xn_changes_add(
			cs, xn_model_class("network"), NULL,
			json_pack("{s:s,s:s,s:I,s:{}}", "name_label", label, "bridge", bridge, "MTU",
				  json_integer_value(json_object_get(l, "mtu")), "other_config"));
		json_t *rec = json_pack("{s:s,s:s,s:s,s:O,s:O,s:i,s:b,s:b,s:b}", "device", dev,
					"network", net, "host", h->host_ref, "MAC",
					json_object_get(l, "mac"), "MTU", json_object_get(l, "mtu"),
					"VLAN", -1, "physical", 1, "currently_attached", 0,
					"management", xn_streq(dev, mgmt));
		ip_fields(rec, dev);
		xn_changes_add(cs, xn_model_class("PIF"), NULL, rec);
		added++;
	}
	json_decref(links);
	if (xn_db_commit(h->db, cs, err) < 0)
		return -1;
	if (added)
		xn_info("net: %zu physical interface%s recorded", added, added == 1 ? "" : "s");
	return 0;
}

/* ---- PIF.plug, PIF.unplug: a NIC into its network's bridge and out -------- */

/* Move dev's addresses and routes to `to` (the NIC's to its bridge, or
 * back). Addresses first, then the routes. */
static int move_ip(const char *from, const char *to, xn_error **err)
{
	json_t *addrs = xn_nl_addrs(from, err);
	if (!addrs)
		return -1;
	json_t *routes = xn_nl_routes(from, err);
	if (!routes) {
		json_decref(addrs);
		return -1;
	}
	int rc = 0;
	size_t i;
	json_t *a;
	json_array_foreach(addrs, i, a) {
		const char *ip = json_string_value(json_object_get(a, "address"));
		if (json_integer_value(json_object_get(a, "family")) == 6 && xn_str_has_prefix(ip, "fe80"))
			continue; /* link-local: each link has its own */
		XN_AUTOFREE char *cidr = xn_asprintf("%s/%lld", ip,
						     json_integer_value(json_object_get(a, "prefix")));
		if (rc == 0 && xn_nl_addr_add(to, cidr, err) < 0)
			rc = -1;
	}
	json_array_foreach(routes, i, a) {
		const char *dst = json_string_value(json_object_get(a, "dst"));
		const char *gw = json_string_value(json_object_get(a, "gateway"));
		unsigned metric = (unsigned)json_integer_value(json_object_get(a, "metric"));
		if (rc == 0 && gw) {
			xn_nl_route_del(dst, gw, from, NULL);
			if (xn_nl_route_add(dst, gw, to, metric, err) < 0)
				rc = -1;
		}
	}
	json_array_foreach(addrs, i, a) {
		const char *ip = json_string_value(json_object_get(a, "address"));
		if (json_integer_value(json_object_get(a, "family")) == 6 && xn_str_has_prefix(ip, "fe80"))
			continue;
		XN_AUTOFREE char *cidr = xn_asprintf("%s/%lld", ip,
						     json_integer_value(json_object_get(a, "prefix")));
		if (rc == 0)
			xn_nl_addr_del(from, cidr, NULL);
	}
	json_decref(addrs);
	json_decref(routes);
	return rc;
}

/* The PIF of a PIF.* call, or NULL after failing the call. */
static const char *call_pif(xn_call *c)
{
	const char *pif = xn_call_arg_str(c, 0);
	if (xn_db_class_of(c->host->db, pif) == xn_model_class("PIF"))
		return pif;
	xn_call_fail_code(c, "HANDLE_INVALID", "PIF", pif ? pif : "", NULL);
	return NULL;
}

/* Record the PIF (un)plugged and answer the call. */
static void set_attached(xn_call *c, const char *pif, bool on, const char *bridge)
{
	xn_host *h = c->host;
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_set(cs, pif, "currently_attached", json_boolean(on));
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_info("net: %s %s bridge %s", xn_db_str(h->db, pif, "device"), on ? "joined" : "left",
		bridge);
	xn_call_return(c, NULL);
}

static void pif_plug(xn_call *c)
{
	xn_host *h = c->host;
	const char *pif = call_pif(c);
	if (!pif)
		return;
	const char *dev = xn_db_str(h->db, pif, "device");
	const char *bridge = xn_db_str(h->db, xn_db_str(h->db, pif, "network"), "bridge");
	if (!xn_nl_link_exists(dev)) {
		xn_call_fail_code(c, "INVALID_VALUE", "device", dev, NULL);
		return;
	}
	xn_error *err = NULL;
	if (!xn_db_bool(h->db, pif, "currently_attached") &&
	    (xn_nl_bridge_add(bridge, &err) < 0 || xn_nl_link_set_up(bridge, true, &err) < 0 ||
	     move_ip(dev, bridge, &err) < 0 || xn_nl_link_set_master(dev, bridge, &err) < 0 ||
	     xn_nl_link_set_up(dev, true, &err) < 0)) {
		xn_call_fail(c, err);
		return;
	}
	set_attached(c, pif, true, bridge);
}

static void pif_unplug(xn_call *c)
{
	xn_host *h = c->host;
	const char *pif = call_pif(c);
	if (!pif)
		return;
	const char *dev = xn_db_str(h->db, pif, "device");
	const char *bridge = xn_db_str(h->db, xn_db_str(h->db, pif, "network"), "bridge");
	xn_error *err = NULL;
	if (xn_db_bool(h->db, pif, "currently_attached") && xn_nl_link_exists(bridge) &&
	    (xn_nl_link_set_master(dev, NULL, &err) < 0 || move_ip(bridge, dev, &err) < 0)) {
		xn_call_fail(c, err);
		return;
	}
	set_attached(c, pif, false, bridge);
}

/* PIF.forget: the record goes (a NIC in its bridge is unplugged first). */
static void pif_forget(xn_call *c)
{
	xn_host *h = c->host;
	const char *pif = call_pif(c);
	if (!pif)
		return;
	if (xn_db_bool(h->db, pif, "currently_attached")) {
		xn_call_fail_code(c, "OPERATION_NOT_ALLOWED",
				  "the PIF is plugged into its bridge: unplug it first", NULL);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_delete(cs, pif);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

/* A dotted netmask as a prefix length, -1 if it is not one. */
static int mask_prefix(const char *mask)
{
	struct in_addr a;
	if (inet_pton(AF_INET, mask, &a) != 1)
		return -1;
	uint32_t m = ntohl(a.s_addr);
	int n = __builtin_popcount(m);
	return n == 0 || m != (~0u << (32 - n)) ? -1 : n;
}

/* PIF.reconfigure_ip(mode, IP, netmask, gateway, DNS): Static puts IP
 * on the interface that carries the PIF's traffic (its bridge once
 * plugged) in place of its IPv4 addresses, with a default route through
 * gateway if given; None removes them. DHCP needs a DHCP client, which
 * the daemon does not run: refused. */
static void pif_reconfigure_ip(xn_call *c)
{
	xn_host *h = c->host;
	const char *pif = call_pif(c);
	if (!pif)
		return;
	const char *mode = xn_call_arg_str(c, 1), *ip = xn_call_arg_str(c, 2);
	const char *mask = xn_call_arg_str(c, 3), *gw = xn_call_arg_str(c, 4);
	bool stat = strcasecmp(mode, "Static") == 0, none = strcasecmp(mode, "None") == 0;
	struct in_addr tmp;
	int prefix = stat ? mask_prefix(mask) : 0;
	if (!stat && !none) {
		xn_call_fail_code(c, "INVALID_VALUE", "mode", mode, NULL);
		return;
	}
	if (stat && inet_pton(AF_INET, ip, &tmp) != 1) {
		xn_call_fail_code(c, "INVALID_VALUE", "IP", ip, NULL);
		return;
	}
	if (stat && prefix < 0) {
		xn_call_fail_code(c, "INVALID_VALUE", "netmask", mask, NULL);
		return;
	}
	if (stat && gw[0] && inet_pton(AF_INET, gw, &tmp) != 1) {
		xn_call_fail_code(c, "INVALID_VALUE", "gateway", gw, NULL);
		return;
	}
	const char *dev = xn_db_bool(h->db, pif, "currently_attached")
				  ? xn_db_str(h->db, xn_db_str(h->db, pif, "network"), "bridge")
				  : xn_db_str(h->db, pif, "device");
	xn_error *err = NULL;
	json_t *addrs = xn_nl_addrs(dev, &err);
	if (!addrs) {
		xn_call_fail(c, err);
		return;
	}
	/* the old addresses go first: removing an interface's primary address
	 * takes its secondaries (the new one would be one) with it */
	XN_AUTOFREE char *cidr = stat ? xn_asprintf("%s/%d", ip, prefix) : NULL;
	json_t *olds = json_array();
	size_t i;
	json_t *a;
	json_array_foreach(addrs, i, a) {
		if (json_integer_value(json_object_get(a, "family")) != 4)
			continue;
		json_t *old = json_sprintf("%s/%lld", json_string_value(json_object_get(a, "address")),
					   json_integer_value(json_object_get(a, "prefix")));
		xn_nl_addr_del(dev, json_string_value(old), NULL);
		json_array_append_new(olds, old);
	}
	json_decref(addrs);
	int rc = stat ? xn_nl_addr_add(dev, cidr, &err) : 0;
	json_array_foreach(olds, i, a)   /* put back what was there if that failed */
		if (rc < 0)
			xn_nl_addr_add(dev, json_string_value(a), NULL);
	json_decref(olds);
	if (rc == 0 && stat && gw[0]) {
		xn_nl_route_del("default", NULL, dev, NULL);
		rc = xn_nl_route_add("default", gw, dev, 0, &err);
	}
	if (rc < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	json_t *rec = xn_changes_edit(cs, pif);
	json_object_set_new(rec, "ip_configuration_mode", json_string(stat ? "Static" : "None"));
	json_object_set_new(rec, "IP", json_string(stat ? ip : ""));
	json_object_set_new(rec, "netmask", json_string(stat ? mask : ""));
	json_object_set_new(rec, "gateway", json_string(stat ? gw : ""));
	json_object_set_new(rec, "DNS", json_string(xn_call_arg_str(c, 5)));
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_info("net: %s reconfigured: %s %s", dev, mode, stat ? cidr : "");
	xn_call_return(c, NULL);
}

static void pif_scan(xn_call *c)
{
	xn_error *err = NULL;
	if (xn_pif_scan(c->host, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

const xn_api_method xn_pif_methods[] = {
	{"PIF.scan", pif_scan},
	{"PIF.plug", pif_plug},
	{"PIF.unplug", pif_unplug},
	{"PIF.forget", pif_forget},
	{"PIF.reconfigure_ip", pif_reconfigure_ip},
	{NULL, NULL},
};
