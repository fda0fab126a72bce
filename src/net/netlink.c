/* netlink.c: the host's network devices (netlink.h) over rtnetlink with
 * libnl-route-3, and taps through /dev/net/tun. Rate limits are in
 * ratelimit.c, which shares this file's helpers (netlink_int.h).
 *
 * Every call opens its own netlink socket and closes it before it
 * returns. A socket belongs to the network namespace of the thread that
 * made it, so a per-call socket is what makes each call act in the
 * calling thread's namespace (a shared socket would stay in the
 * namespace of its first caller). The cost is one socket(2) and bind(2)
 * per call, nothing next to the kernel's work.
 *
 * libnl 3.7 has no setters for bridge (IFLA_BR_*) or bond (IFLA_BOND_*)
 * options: those links are made with an RTM_NEWLINK built here with
 * nla_put (newlink()); libnl does the rest. Errors are INTERNAL_ERROR
 * "netlink: <what> <name>: <reason>". */
#include "net/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_bonding.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/route.h>

#include "net/netlink_int.h"

/* ---- plumbing --------------------------------------------------------- */

static void addr_putp(struct nl_addr **p) { if (*p) nl_addr_put(*p); }
static void rtaddr_putp(struct rtnl_addr **p) { if (*p) rtnl_addr_put(*p); }
static void route_putp(struct rtnl_route **p) { if (*p) rtnl_route_put(*p); }
#define AUTO_ADDR __attribute__((cleanup(addr_putp))) struct nl_addr
#define AUTO_RTADDR __attribute__((cleanup(rtaddr_putp))) struct rtnl_addr
#define AUTO_ROUTE __attribute__((cleanup(route_putp))) struct rtnl_route

int xn_nl_fail(xn_error **err, const char *what, const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *reason = xn_vasprintf(fmt, ap);
	va_end(ap);
	return xn_fail_internal(err, "netlink: %s %s: %s", what, name, reason);
}

int xn_nl_fail_nl(xn_error **err, const char *what, const char *name, int nlerr)
{
	return xn_nl_fail(err, what, name, "%s", nl_geterror(nlerr));
}

/* For the listings: NULL with err. */
static void *fail_nl_null(xn_error **err, const char *what, const char *name, int nlerr)
{
	xn_nl_fail_nl(err, what, name, nlerr);
	return NULL;
}

bool xn_nl_missing(int nlerr)
{
	return nlerr == -NLE_OBJ_NOTFOUND || nlerr == -NLE_NODEV;
}

/* As the kernel's dev_valid_name(), ASCII spaces and controls refused. */
static bool valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c == '/' || *c == ':' || *c <= ' ' || *c == 0x7f)
			return false;
	return true;
}

static bool check_name(const char *what, const char *name, xn_error **err)
{
	if (valid_name(name))
		return true;
	xn_nl_fail(err, what, name ? name : "(null)", "invalid interface name");
	return false;
}

/* A NETLINK_ROUTE socket in the calling thread's namespace; caller frees. */
static struct nl_sock *sock_open(const char *what, const char *name, xn_error **err)
{
	struct nl_sock *sk = must_ptr(nl_socket_alloc());
	int rc = nl_connect(sk, NETLINK_ROUTE);
	if (rc < 0) {
		nl_socket_free(sk);
		xn_nl_fail_nl(err, what, name, rc);
		return NULL;
	}
	return sk;
}

struct nl_sock *xn_nl_open(const char *what, const char *name, xn_error **err)
{
	return check_name(what, name, err) ? sock_open(what, name, err) : NULL;
}

/* name's link as the kernel has it now (caller puts), or NULL: *rc is 0
 * when there is no such link, negative on other failures. */
static struct rtnl_link *link_get(struct nl_sock *sk, const char *name, int *rc)
{
	struct rtnl_link *l = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, &l);
	*rc = xn_nl_missing(r) ? 0 : r;
	return r < 0 ? NULL : l;
}

int xn_nl_link_find(struct nl_sock *sk, const char *what, const char *name, struct rtnl_link **l,
		    xn_error **err)
{
	int rc;
	*l = link_get(sk, name, &rc);
	return rc < 0 ? xn_nl_fail_nl(err, what, name, rc) : 0;
}

/* dev's link for a call on name (caller puts), or NULL with err: "no
 * such device" (naming dev if it is not name), or a failure; *gone (if
 * not NULL) tells the first case. */
static struct rtnl_link *link_need(struct nl_sock *sk, const char *what, const char *name,
				   const char *dev, bool *gone, xn_error **err)
{
	int rc;
	struct rtnl_link *l = link_get(sk, dev, &rc);
	if (gone)
		*gone = !l && rc == 0;
	if (!l && rc < 0)
		xn_nl_fail_nl(err, what, name, rc);
	else if (!l && dev == name)
		xn_nl_fail(err, what, name, "no such device");
	else if (!l)
		xn_nl_fail(err, what, name, "no such device '%s'", dev);
	return l;
}

/* A socket and name's link, for a call on an existing link: 0, or -1
 * with err (*sk and *l are the caller's to free either way). */
static int open_link(const char *what, const char *name, struct nl_sock **sk,
		     struct rtnl_link **l, xn_error **err)
{
	*l = NULL;
	*sk = xn_nl_open(what, name, err);
	return *sk && (*l = link_need(*sk, what, name, name, NULL, err)) ? 0 : -1;
}

static const char *link_kind(struct rtnl_link *l)
{
	const char *k = rtnl_link_get_type(l);
	return k ? k : "";
}

static int link_change(struct nl_sock *sk, struct rtnl_link *l, struct rtnl_link *change,
		       const char *what, const char *name, xn_error **err)
{
	int rc = rtnl_link_change(sk, l, change, 0);
	return rc < 0 ? xn_nl_fail_nl(err, what, name, rc) : 0;
}

/* Bring l up or down. */
static int link_set_up(struct nl_sock *sk, struct rtnl_link *l, bool up, const char *what,
		       const char *name, xn_error **err)
{
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	if (up)
		rtnl_link_set_flags(change, IFF_UP);
	else
		rtnl_link_unset_flags(change, IFF_UP);
	return link_change(sk, l, change, what, name, err);
}

/* An existing link of another kind than the one asked for. */
static int fail_kind(xn_error **err, const char *what, const char *name, struct rtnl_link *l,
		     const char *kind)
{
	return xn_nl_fail(err, what, name, "exists and is not a %s (kind '%s')", kind, link_kind(l));
}

/* One IFLA_INFO_DATA attribute of newlink(): a u8 or a u32. */
struct info_attr {
	int type;
	int size;
	uint32_t value;
};

/* RTM_NEWLINK for name of kind, up, with info data: creates the link
 * (flags NLM_F_CREATE [| NLM_F_EXCL]) or changes its options (flags 0). */
static int newlink(struct nl_sock *sk, const char *name, const char *kind, int flags,
		   const struct info_attr *attrs, size_t n)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
	struct nl_msg *msg = must_ptr(nlmsg_alloc_simple(RTM_NEWLINK, flags));
	must(nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO));
	must(nla_put_string(msg, IFLA_IFNAME, name));
	struct nlattr *info = must_ptr(nla_nest_start(msg, IFLA_LINKINFO));
	must(nla_put_string(msg, IFLA_INFO_KIND, kind));
	struct nlattr *data = must_ptr(nla_nest_start(msg, IFLA_INFO_DATA));
	for (size_t i = 0; i < n; i++)
		must(attrs[i].size == 1 ? nla_put_u8(msg, attrs[i].type, (uint8_t)attrs[i].value)
					: nla_put_u32(msg, attrs[i].type, attrs[i].value));
	nla_nest_end(msg, data);
	nla_nest_end(msg, info);
	return nl_send_sync(sk, msg); /* frees msg */
}

/* A failed creation of a link of kind: EOPNOTSUPP there means the kernel
 * has no such link type (not built, module missing). */
static int fail_add(xn_error **err, const char *what, const char *name, const char *kind,
		    int nlerr)
{
	if (nlerr != -NLE_OPNOTSUPP)
		return xn_nl_fail_nl(err, what, name, nlerr);
	return xn_nl_fail(err, what, name, "the kernel does not support '%s' links", kind);
}

/* ---- links ------------------------------------------------------------ */

static char *mac_str(struct nl_addr *a)
{
	xn_buf b = {0};
	const unsigned char *p = a ? nl_addr_get_binary_addr(a) : NULL;
	unsigned n = a ? nl_addr_get_len(a) : 0;
	for (unsigned i = 0; i < n; i++)
		xn_buf_printf(&b, "%s%02x", i ? ":" : "", p[i]);
	return xn_buf_steal(&b); /* "" for a link without an address */
}

static json_t *name_or_null(struct nl_cache *cache, int ifindex)
{
	char buf[IFNAMSIZ];
	if (ifindex <= 0 || !rtnl_link_i2name(cache, ifindex, buf, sizeof(buf)))
		return json_null();
	return json_string(buf);
}

static json_t *link_json(struct nl_cache *cache, struct rtnl_link *l)
{
	XN_AUTOFREE char *mac = mac_str(rtnl_link_get_addr(l));
	unsigned flags = rtnl_link_get_flags(l);
	bool vlan = rtnl_link_is_vlan(l);
	return json_pack("{s:s,s:i,s:s,s:i,s:b,s:b,s:s,s:o,s:o,s:o}", "name",
			 rtnl_link_get_name(l), "index", rtnl_link_get_ifindex(l), "mac", mac, "mtu",
			 (int)rtnl_link_get_mtu(l), "up", (flags & IFF_UP) != 0, "carrier",
			 rtnl_link_get_carrier(l) != 0, "kind", link_kind(l), "master",
			 name_or_null(cache, rtnl_link_get_master(l)), "vlan_id",
			 vlan ? json_integer(rtnl_link_vlan_get_id(l)) : json_null(), "parent",
			 vlan ? name_or_null(cache, rtnl_link_get_link(l)) : json_null());
}

/* "vlan_id" and "parent" are null for links other than VLANs. */
json_t *xn_nl_links(xn_error **err)
{
	AUTO_SOCK *sk = sock_open("list", "links", err);
	if (!sk)
		return NULL;
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (rc < 0)
		return fail_nl_null(err, "list", "links", rc);
	json_t *out = json_array();
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
		json_array_append_new(out, link_json(cache, (struct rtnl_link *)o));
	return out;
}

bool xn_nl_link_exists(const char *name)
{
	if (!valid_name(name))
		return false;
	AUTO_SOCK *sk = sock_open("find", name, NULL);
	int rc;
	AUTO_LINK *l = sk ? link_get(sk, name, &rc) : NULL;
	return l != NULL;
}

int xn_nl_link_set_up(const char *name, bool up, xn_error **err)
{
	const char *what = up ? "set up" : "set down";
	AUTO_SOCK *sk = NULL;
	AUTO_LINK *l = NULL;
	if (open_link(what, name, &sk, &l, err) < 0)
		return -1;
	return link_set_up(sk, l, up, what, name, err);
}

/* A bond takes only ports that are down (it brings them up itself); a
 * bridge takes them as they are. */
int xn_nl_link_set_master(const char *name, const char *master, xn_error **err)
{
	const char *what = "set master";
	if (!check_name(what, name, err) || (master && !check_name(what, master, err)))
		return -1;
	AUTO_SOCK *sk = NULL;
	AUTO_LINK *l = NULL;
	if (open_link(what, name, &sk, &l, err) < 0)
		return -1;
	int index = 0;
	bool downed = false;
	if (master) {
		int rc;
		AUTO_LINK *m = link_get(sk, master, &rc);
		if (!m)
			return rc < 0 ? xn_nl_fail_nl(err, what, name, rc)
				      : xn_nl_fail(err, what, name, "no master '%s'", master);
		index = rtnl_link_get_ifindex(m);
		if (rtnl_link_get_master(l) != index && xn_streq(link_kind(m), "bond") &&
		    (rtnl_link_get_flags(l) & IFF_UP)) {
			if (link_set_up(sk, l, false, what, name, err) < 0)
				return -1;
			downed = true;
		}
	}
	if (rtnl_link_get_master(l) == index)
		return 0;
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	rtnl_link_set_master(change, index);
	if (link_change(sk, l, change, what, name, err) < 0) {
		if (downed) /* as it was */
			link_set_up(sk, l, true, what, name, NULL);
		return -1;
	}
	return 0;
}

int xn_nl_link_set_mtu(const char *name, unsigned mtu, xn_error **err)
{
	const char *what = "set mtu";
	AUTO_SOCK *sk = NULL;
	AUTO_LINK *l = NULL;
	if (open_link(what, name, &sk, &l, err) < 0)
		return -1;
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	rtnl_link_set_mtu(change, mtu);
	return link_change(sk, l, change, what, name, err);
}

/* Also drops name's ingress rate limit (see xn_nl_rate_limit), which
 * would otherwise outlive the link. */
int xn_nl_link_del(const char *name, xn_error **err)
{
	const char *what = "delete";
	AUTO_SOCK *sk = xn_nl_open(what, name, err);
	AUTO_LINK *l = NULL;
	if (!sk || xn_nl_link_find(sk, what, name, &l, err) < 0)
		return -1;
	int rc;
	if (l && (rc = rtnl_link_delete(sk, l)) < 0 && !xn_nl_missing(rc))
		return xn_nl_fail_nl(err, what, name, rc);
	xn_nl_rate_limit_drop(name, NULL); /* best effort: see xn_nl_tap_open */
	return 0;
}

int xn_nl_bridge_add(const char *name, xn_error **err)
{
	const char *what = "bridge add";
	AUTO_SOCK *sk = xn_nl_open(what, name, err);
	AUTO_LINK *l = NULL;
	if (!sk || xn_nl_link_find(sk, what, name, &l, err) < 0)
		return -1;
	if (l && !xn_streq(link_kind(l), "bridge"))
		return fail_kind(err, what, name, l, "bridge");
	/* Two steps: the kernel refuses forward delay 0 while STP is on, and
	 * would apply the delay first if both came in one message. */
	static const struct info_attr stp_off[] = {{IFLA_BR_STP_STATE, 4, 0}};
	static const struct info_attr no_delay[] = {{IFLA_BR_FORWARD_DELAY, 4, 0}};
	int rc;
	if ((rc = newlink(sk, name, "bridge", NLM_F_CREATE, stp_off, 1)) < 0)
		return fail_add(err, what, name, "bridge", rc);
	if ((rc = newlink(sk, name, "bridge", 0, no_delay, 1)) < 0)
		return xn_nl_fail_nl(err, what, name, rc);
	return 0;
}

int xn_nl_veth_add(const char *name, const char *peer, xn_error **err)
{
	const char *what = "veth add";
	if (!check_name(what, name, err) || !check_name(what, peer, err))
		return -1;
	AUTO_SOCK *sk = sock_open(what, name, err);
	AUTO_LINK *l = NULL, *p = NULL;
	if (!sk || xn_nl_link_find(sk, what, name, &l, err) < 0 ||
	    xn_nl_link_find(sk, what, peer, &p, err) < 0)
		return -1;
	if (l || p) {
		/* both there and each other's peers, or an error */
		if (!l || !p || !xn_streq(link_kind(l), "veth") ||
		    rtnl_link_get_link(l) != rtnl_link_get_ifindex(p))
			return xn_nl_fail(err, what, name, "exists and is not a veth pair with '%s'",
					  peer);
	} else {
		int rc = rtnl_link_veth_add(sk, name, peer, getpid()); /* the peer in our namespace */
		if (rc < 0)
			return fail_add(err, what, name, "veth", rc);
		if (xn_nl_link_find(sk, what, name, &l, err) < 0 ||
		    xn_nl_link_find(sk, what, peer, &p, err) < 0)
			return -1;
		if (!l || !p)
			return xn_nl_fail(err, what, name, "gone as soon as made");
	}
	return link_set_up(sk, l, true, what, name, err) < 0 ||
			       link_set_up(sk, p, true, what, peer, err) < 0
		       ? -1
		       : 0;
}

int xn_nl_link_set_promisc(const char *name, bool on, xn_error **err)
{
	const char *what = on ? "set promisc" : "clear promisc";
	AUTO_SOCK *sk = NULL;
	AUTO_LINK *l = NULL;
	if (open_link(what, name, &sk, &l, err) < 0)
		return -1;
	if (((rtnl_link_get_flags(l) & IFF_PROMISC) != 0) == on)
		return 0;
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	if (on)
		rtnl_link_set_flags(change, IFF_PROMISC);
	else
		rtnl_link_unset_flags(change, IFF_PROMISC);
	return link_change(sk, l, change, what, name, err);
}

static int bond_mode_parse(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1], *data[IFLA_BOND_MAX + 1];
	if (nlmsg_parse(nlmsg_hdr(msg), sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) < 0 ||
	    !tb[IFLA_LINKINFO] || nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) < 0 ||
	    !info[IFLA_INFO_DATA] ||
	    nla_parse_nested(data, IFLA_BOND_MAX, info[IFLA_INFO_DATA], NULL) < 0 ||
	    !data[IFLA_BOND_MODE])
		return NL_SKIP;
	*(int *)arg = nla_get_u8(data[IFLA_BOND_MODE]);
	return NL_OK;
}

/* The mode of bond ifindex (libnl 3.7 does not parse bond options), or
 * -1 if the kernel did not say. */
static int bond_mode_get(struct nl_sock *sk, int ifindex, int *mode)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex};
	AUTO_MSG *msg = must_ptr(nlmsg_alloc_simple(RTM_GETLINK, 0));
	must(nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO));
	int rc = nl_send_auto(sk, msg);
	if (rc < 0)
		return rc;
	AUTO_CB *cb = must_ptr(nl_cb_alloc(NL_CB_DEFAULT));
	*mode = -1;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, bond_mode_parse, mode);
	if ((rc = nl_recvmsgs(sk, cb)) < 0)
		return rc;
	return nl_wait_for_ack(sk);
}

int xn_nl_bond_add(const char *name, const char *mode, xn_error **err)
{
	static const struct {
		const char *name;
		int mode;
	} modes[] = {{"active-backup", BOND_MODE_ACTIVEBACKUP},
		     {"balance-tlb", BOND_MODE_TLB},
		     {"802.3ad", BOND_MODE_8023AD}};
	const char *what = "bond add";
	if (!check_name(what, name, err))
		return -1;
	int m = -1;
	for (size_t i = 0; i < XN_ARRAY_LEN(modes); i++)
		if (xn_streq(mode, modes[i].name))
			m = modes[i].mode;
	if (m < 0)
		return xn_nl_fail(err, what, name,
				  "unknown bond mode '%s' (active-backup, balance-tlb or 802.3ad)",
				  mode ? mode : "");
	AUTO_SOCK *sk = sock_open(what, name, err);
	AUTO_LINK *l = NULL;
	if (!sk || xn_nl_link_find(sk, what, name, &l, err) < 0)
		return -1;
	const struct info_attr opts[] = {{IFLA_BOND_MIIMON, 4, 100}, {IFLA_BOND_MODE, 1, (uint32_t)m}};
	int rc, have;
	if (!l) {
		rc = newlink(sk, name, "bond", NLM_F_CREATE | NLM_F_EXCL, opts, 2);
		return rc < 0 ? fail_add(err, what, name, "bond", rc) : 0;
	}
	if (!xn_streq(link_kind(l), "bond"))
		return fail_kind(err, what, name, l, "bond");
	/* The kernel changes a bond's mode only while it is down and has no
	 * ports: an existing bond in another mode is an error, not a change. */
	if ((rc = bond_mode_get(sk, rtnl_link_get_ifindex(l), &have)) < 0)
		return xn_nl_fail_nl(err, what, name, rc);
	if (have != m)
		return xn_nl_fail(err, what, name, "exists in another mode than '%s'", mode);
	if ((rc = newlink(sk, name, "bond", 0, opts, 1)) < 0) /* miimon only */
		return xn_nl_fail_nl(err, what, name, rc);
	return 0;
}

/* ---- taps ------------------------------------------------------------- */

/* A tap that is new here drops any ingress limit left under its name by
 * an earlier device of that name: nftables keeps a netdev chain when its
 * device goes (and recent kernels attach it again to the next device of
 * the same name), so an old VIF's limit would apply to a new VIF. */
int xn_nl_tap_open(const char *name, int *fd, xn_error **err)
{
	const char *what = "tap open";
	if (!check_name(what, name, err))
		return -1;
	bool existed = xn_nl_link_exists(name);
	XN_AUTOCLOSE int t = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (t < 0)
		return xn_nl_fail(err, what, name, "%s", strerror(errno));
	struct ifreq ifr = {0};
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(t, TUNSETIFF, &ifr) < 0)
		return xn_nl_fail(err, what, name, "%s", strerror(errno));
	if (!existed)
		xn_nl_rate_limit_drop(name, NULL); /* best effort: no nftables, no leftover */
	*fd = xn_steal_fd(&t);
	return 0;
}

/* ---- addresses and routes --------------------------------------------- */

/* An IPv4 or IPv6 address, with "/prefix" when cidr (required then), as
 * an nl_addr (caller puts); NULL if malformed. */
static struct nl_addr *parse_addr(const char *s, bool cidr)
{
	if (!s)
		return NULL;
	const char *slash = strchr(s, '/');
	if (cidr != (slash != NULL))
		return NULL;
	char ip[INET6_ADDRSTRLEN];
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof(ip))
		return NULL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
	unsigned char bin[16];
	if (inet_pton(family, ip, bin) != 1)
		return NULL;
	int bits = family == AF_INET ? 32 : 128;
	long prefix = bits;
	if (slash) {
		char *end;
		if (slash[1] < '0' || slash[1] > '9')
			return NULL;
		prefix = strtol(slash + 1, &end, 10);
		if (*end || prefix > bits)
			return NULL;
	}
	struct nl_addr *a = must_ptr(nl_addr_build(family, bin, bits / 8));
	nl_addr_set_prefixlen(a, (int)prefix);
	return a;
}

static const char *ip_str(struct nl_addr *a, char buf[INET6_ADDRSTRLEN])
{
	int family = nl_addr_get_family(a);
	unsigned char zero[16] = {0};
	const void *bin = nl_addr_get_len(a) ? nl_addr_get_binary_addr(a) : zero;
	return inet_ntop(family, bin, buf, INET6_ADDRSTRLEN) ? buf : "";
}

json_t *xn_nl_addrs(const char *name, xn_error **err)
{
	const char *what = "list addresses";
	AUTO_SOCK *sk = NULL;
	AUTO_LINK *l = NULL;
	if (open_link(what, name, &sk, &l, err) < 0)
		return NULL;
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_addr_alloc_cache(sk, &cache);
	if (rc < 0)
		return fail_nl_null(err, what, name, rc);
	json_t *out = json_array();
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		int family = rtnl_addr_get_family(a);
		if (rtnl_addr_get_ifindex(a) != rtnl_link_get_ifindex(l) ||
		    (family != AF_INET && family != AF_INET6) || !rtnl_addr_get_local(a))
			continue;
		char buf[INET6_ADDRSTRLEN];
		json_array_append_new(out, json_pack("{s:i,s:s,s:i}", "family",
						     family == AF_INET ? 4 : 6, "address",
						     ip_str(rtnl_addr_get_local(a), buf), "prefix",
						     rtnl_addr_get_prefixlen(a)));
	}
	return out;
}

/* addr add and addr del: the address cidr on name as libnl wants it
 * (caller puts), or NULL with err; *gone is set when name does not
 * exist (then there is nothing to remove). */
static struct rtnl_addr *addr_of(struct nl_sock *sk, const char *what, const char *name,
				 const char *cidr, bool *gone, xn_error **err)
{
	AUTO_ADDR *a = parse_addr(cidr, true);
	if (!a) {
		xn_nl_fail(err, what, name, "invalid address '%s'", cidr ? cidr : "");
		return NULL;
	}
	AUTO_LINK *l = link_need(sk, what, name, name, gone, err);
	if (!l)
		return NULL;
	struct rtnl_addr *ra = must_ptr(rtnl_addr_alloc());
	rtnl_addr_set_ifindex(ra, rtnl_link_get_ifindex(l));
	rtnl_addr_set_family(ra, nl_addr_get_family(a));
	must(rtnl_addr_set_local(ra, a));
	return ra;
}

int xn_nl_addr_add(const char *name, const char *cidr, xn_error **err)
{
	const char *what = "addr add";
	AUTO_SOCK *sk = xn_nl_open(what, name, err);
	bool gone;
	AUTO_RTADDR *ra = sk ? addr_of(sk, what, name, cidr, &gone, err) : NULL;
	if (!ra)
		return -1;
	int rc = rtnl_addr_add(sk, ra, NLM_F_EXCL);
	if (rc < 0 && rc != -NLE_EXIST)
		return xn_nl_fail(err, what, name, "'%s': %s", cidr, nl_geterror(rc));
	return 0;
}

int xn_nl_addr_del(const char *name, const char *cidr, xn_error **err)
{
	const char *what = "addr del";
	AUTO_SOCK *sk = xn_nl_open(what, name, err);
	if (!sk)
		return -1;
	bool gone = false;
	XN_AUTOERR xn_error *e = NULL;
	AUTO_RTADDR *ra = addr_of(sk, what, name, cidr, &gone, &e);
	if (!ra)
		return gone ? 0 : xn_error_propagate(err, &e);
	int rc = rtnl_addr_delete(sk, ra, 0);
	if (rc < 0 && rc != -NLE_NOADDR && !xn_nl_missing(rc))
		return xn_nl_fail(err, what, name, "'%s': %s", cidr, nl_geterror(rc));
	return 0;
}

static bool same_prefix(struct nl_addr *a, struct nl_addr *b)
{
	unsigned plen = nl_addr_get_prefixlen(a);
	if (nl_addr_get_family(a) != nl_addr_get_family(b) || plen != nl_addr_get_prefixlen(b))
		return false;
	return plen == 0 || (nl_addr_get_len(a) == nl_addr_get_len(b) &&
			     !memcmp(nl_addr_get_binary_addr(a), nl_addr_get_binary_addr(b),
				     nl_addr_get_len(a)));
}

/* r's first next hop through ifindex, or NULL: a main-table unicast
 * route of IPv4 or IPv6 only. */
static struct rtnl_nexthop *route_via(struct rtnl_route *r, int ifindex)
{
	int family = rtnl_route_get_family(r);
	if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST ||
	    (family != AF_INET && family != AF_INET6))
		return NULL;
	for (int i = 0; i < rtnl_route_get_nnexthops(r); i++) {
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, i);
		if (rtnl_route_nh_get_ifindex(nh) == ifindex)
			return nh;
	}
	return NULL;
}

json_t *xn_nl_routes(const char *name, xn_error **err)
{
	const char *what = "list routes";
	AUTO_SOCK *sk = NULL;
	AUTO_LINK *l = NULL;
	if (open_link(what, name, &sk, &l, err) < 0)
		return NULL;
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &cache);
	if (rc < 0)
		return fail_nl_null(err, what, name, rc);
	json_t *out = json_array();
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		struct rtnl_nexthop *nh = route_via(r, rtnl_link_get_ifindex(l));
		if (!nh)
			continue;
		struct nl_addr *dst = rtnl_route_get_dst(r), *gw = rtnl_route_nh_get_gateway(nh);
		char buf[INET6_ADDRSTRLEN];
		XN_AUTOFREE char *d = nl_addr_get_prefixlen(dst)
					      ? xn_asprintf("%s/%u", ip_str(dst, buf),
							    nl_addr_get_prefixlen(dst))
					      : xn_strdup("default");
		json_array_append_new(
			out, json_pack("{s:i,s:s,s:o,s:I}", "family",
				       rtnl_route_get_family(r) == AF_INET ? 4 : 6, "dst", d,
				       "gateway", gw ? json_string(ip_str(gw, buf)) : json_null(),
				       "metric", (json_int_t)rtnl_route_get_priority(r)));
	}
	return out;
}

/* route add and route del: the route as libnl wants it (caller puts), or
 * NULL with err; *gone is set when dev does not exist. "default" is
 * IPv4's default route unless gateway is IPv6 ("::/0" names IPv6's). */
static struct rtnl_route *route_of(struct nl_sock *sk, const char *what, const char *dst,
				   const char *gateway, const char *dev, bool *gone, xn_error **err)
{
	const char *shown = dst ? dst : "(null)";
	AUTO_ADDR *gw = NULL;
	if (gateway && !(gw = parse_addr(gateway, false))) {
		xn_nl_fail(err, what, shown, "invalid gateway '%s'", gateway);
		return NULL;
	}
	AUTO_ADDR *d = NULL;
	if (xn_streq(dst, "default")) {
		int family = gw ? nl_addr_get_family(gw) : AF_INET;
		unsigned char zero[16] = {0};
		d = must_ptr(nl_addr_build(family, zero, family == AF_INET ? 4 : 16));
		nl_addr_set_prefixlen(d, 0);
	} else if (!(d = parse_addr(dst, true))) {
		xn_nl_fail(err, what, shown, "invalid destination (a cidr or \"default\")");
		return NULL;
	}
	if (gw && nl_addr_get_family(gw) != nl_addr_get_family(d)) {
		xn_nl_fail(err, what, shown, "gateway '%s' is not of the destination's family",
			   gateway);
		return NULL;
	}
	if (!valid_name(dev)) {
		xn_nl_fail(err, what, shown, "invalid device name '%s'", dev ? dev : "");
		return NULL;
	}
	AUTO_LINK *l = link_need(sk, what, shown, dev, gone, err);
	if (!l)
		return NULL;
	struct rtnl_route *route = must_ptr(rtnl_route_alloc());
	rtnl_route_set_family(route, nl_addr_get_family(d));
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_type(route, RTN_UNICAST);
	must(rtnl_route_set_dst(route, d));
	struct rtnl_nexthop *nh = must_ptr(rtnl_route_nh_alloc());
	rtnl_route_nh_set_ifindex(nh, rtnl_link_get_ifindex(l));
	if (gw)
		rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_add_nexthop(route, nh); /* the route owns nh */
	return route;
}

/* Whether the main table has exactly this route (after EEXIST: the kernel
 * says so for any route with dst and metric, whatever its next hop). */
static bool route_present(struct nl_sock *sk, struct rtnl_route *want)
{
	AUTO_CACHE *cache = NULL;
	if (rtnl_route_alloc_cache(sk, rtnl_route_get_family(want), 0, &cache) < 0)
		return false;
	struct rtnl_nexthop *wnh = rtnl_route_nexthop_n(want, 0);
	struct nl_addr *wgw = rtnl_route_nh_get_gateway(wnh);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		struct rtnl_nexthop *nh = route_via(r, rtnl_route_nh_get_ifindex(wnh));
		struct nl_addr *gw = nh ? rtnl_route_nh_get_gateway(nh) : NULL;
		if (nh && rtnl_route_get_priority(r) == rtnl_route_get_priority(want) &&
		    same_prefix(rtnl_route_get_dst(r), rtnl_route_get_dst(want)) &&
		    (gw && wgw ? !nl_addr_cmp(gw, wgw) : gw == wgw))
			return true;
	}
	return false;
}

int xn_nl_route_add(const char *dst, const char *gateway, const char *dev, unsigned metric,
		    xn_error **err)
{
	const char *what = "route add";
	AUTO_SOCK *sk = sock_open(what, dst ? dst : "(null)", err);
	bool gone;
	AUTO_ROUTE *r = sk ? route_of(sk, what, dst, gateway, dev, &gone, err) : NULL;
	if (!r)
		return -1;
	rtnl_route_set_protocol(r, RTPROT_STATIC);
	/* as ip(8): a route without a gateway is on the link (IPv4) */
	rtnl_route_set_scope(r, gateway || rtnl_route_get_family(r) == AF_INET6 ? RT_SCOPE_UNIVERSE
									 : RT_SCOPE_LINK);
	rtnl_route_set_priority(r, metric);
	int rc = rtnl_route_add(sk, r, NLM_F_EXCL);
	if (rc == -NLE_EXIST && route_present(sk, r))
		return 0;
	if (rc == -NLE_EXIST)
		return xn_nl_fail(err, what, dst, "another route with metric %u is there", metric);
	return rc < 0 ? xn_nl_fail_nl(err, what, dst, rc) : 0;
}

/* Removes the route to dst through dev (and gateway, if given) whatever
 * its metric and origin. */
int xn_nl_route_del(const char *dst, const char *gateway, const char *dev, xn_error **err)
{
	const char *what = "route del";
	AUTO_SOCK *sk = sock_open(what, dst ? dst : "(null)", err);
	if (!sk)
		return -1;
	bool gone = false;
	XN_AUTOERR xn_error *e = NULL;
	AUTO_ROUTE *r = route_of(sk, what, dst, gateway, dev, &gone, &e);
	if (!r)
		return gone ? 0 : xn_error_propagate(err, &e);
	rtnl_route_set_protocol(r, RTPROT_UNSPEC); /* any origin */
	rtnl_route_set_scope(r, RT_SCOPE_NOWHERE);  /* any scope */
	int rc = rtnl_route_delete(sk, r, 0);
	return rc < 0 && !xn_nl_missing(rc) ? xn_nl_fail_nl(err, what, dst, rc) : 0;
}
