/* netlink.c: the host's network devices (netlink.h) over rtnetlink with
 * libnl-route-3, taps through /dev/net/tun, and the ingress half of a
 * rate limit through nftables (nfnetlink messages built and sent with
 * libnl's core).
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
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_bonding.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>

/* ---- plumbing --------------------------------------------------------- */

static void sock_freep(struct nl_sock **p) { if (*p) nl_socket_free(*p); }
static void cache_freep(struct nl_cache **p) { if (*p) nl_cache_free(*p); }
static void link_putp(struct rtnl_link **p) { if (*p) rtnl_link_put(*p); }
static void addr_putp(struct nl_addr **p) { if (*p) nl_addr_put(*p); }
static void rtaddr_putp(struct rtnl_addr **p) { if (*p) rtnl_addr_put(*p); }
static void route_putp(struct rtnl_route **p) { if (*p) rtnl_route_put(*p); }
static void qdisc_putp(struct rtnl_qdisc **p) { if (*p) rtnl_qdisc_put(*p); }
static void msg_freep(struct nl_msg **p) { if (*p) nlmsg_free(*p); }
static void cb_putp(struct nl_cb **p) { if (*p) nl_cb_put(*p); }
#define AUTO_SOCK __attribute__((cleanup(sock_freep))) struct nl_sock
#define AUTO_CACHE __attribute__((cleanup(cache_freep))) struct nl_cache
#define AUTO_LINK __attribute__((cleanup(link_putp))) struct rtnl_link
#define AUTO_ADDR __attribute__((cleanup(addr_putp))) struct nl_addr
#define AUTO_RTADDR __attribute__((cleanup(rtaddr_putp))) struct rtnl_addr
#define AUTO_ROUTE __attribute__((cleanup(route_putp))) struct rtnl_route
#define AUTO_QDISC __attribute__((cleanup(qdisc_putp))) struct rtnl_qdisc
#define AUTO_MSG __attribute__((cleanup(msg_freep))) struct nl_msg
#define AUTO_CB __attribute__((cleanup(cb_putp))) struct nl_cb

/* Building a message fails only when memory runs out or the message
 * outgrows its page (ours are a few hundred bytes): abort, as allocation
 * failure does everywhere in Xenia. */
static void must(int rc)
{
	if (rc < 0)
		abort();
}

static void *must_ptr(void *p)
{
	if (!p)
		abort();
	return p;
}

static int fail(xn_error **err, const char *what, const char *name, const char *reason)
{
	return xn_fail_internal(err, "netlink: %s %s: %s", what, name, reason);
}

static int fail_nl(xn_error **err, const char *what, const char *name, int nlerr)
{
	return fail(err, what, name, nl_geterror(nlerr));
}

static bool missing(int nlerr)
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
	fail(err, what, name ? name : "(null)", "invalid interface name");
	return false;
}

/* A socket connected to protocol (NETLINK_ROUTE, NETLINK_NETFILTER) in
 * the calling thread's namespace; caller frees. */
static struct nl_sock *nl_open(int protocol, const char *what, const char *name, xn_error **err)
{
	struct nl_sock *sk = must_ptr(nl_socket_alloc());
	int rc = nl_connect(sk, protocol);
	if (rc < 0) {
		nl_socket_free(sk);
		fail_nl(err, what, name, rc);
		return NULL;
	}
	return sk;
}

/* name's link as the kernel has it now (caller puts), or NULL: *rc is 0
 * when there is no such link, negative on other failures. */
static struct rtnl_link *link_get(struct nl_sock *sk, const char *name, int *rc)
{
	struct rtnl_link *l = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, &l);
	*rc = missing(r) ? 0 : r;
	return r < 0 ? NULL : l;
}

/* name's link (caller puts), or NULL with err. */
static struct rtnl_link *link_need(struct nl_sock *sk, const char *what, const char *name,
				   xn_error **err)
{
	int rc;
	struct rtnl_link *l = link_get(sk, name, &rc);
	if (!l)
		rc < 0 ? fail_nl(err, what, name, rc) : fail(err, what, name, "no such device");
	return l;
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
	return rc < 0 ? fail_nl(err, what, name, rc) : 0;
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
		return fail_nl(err, what, name, nlerr);
	XN_AUTOFREE char *r = xn_asprintf("the kernel does not support '%s' links", kind);
	return fail(err, what, name, r);
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
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, "list", "links", err);
	if (!sk)
		return NULL;
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (rc < 0) {
		fail_nl(err, "list", "links", rc);
		return NULL;
	}
	json_t *out = json_array();
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
		json_array_append_new(out, link_json(cache, (struct rtnl_link *)o));
	return out;
}

bool xn_nl_link_exists(const char *name)
{
	if (!valid_name(name))
		return false;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, "find", name, NULL);
	int rc;
	AUTO_LINK *l = sk ? link_get(sk, name, &rc) : NULL;
	return l != NULL;
}

int xn_nl_link_set_up(const char *name, bool up, xn_error **err)
{
	const char *what = up ? "set up" : "set down";
	if (!check_name(what, name, err))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	AUTO_LINK *l = sk ? link_need(sk, what, name, err) : NULL;
	if (!l)
		return -1;
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	if (up)
		rtnl_link_set_flags(change, IFF_UP);
	else
		rtnl_link_unset_flags(change, IFF_UP);
	return link_change(sk, l, change, what, name, err);
}

/* A bond takes only ports that are down (it brings them up itself); a
 * bridge takes them as they are. */
int xn_nl_link_set_master(const char *name, const char *master, xn_error **err)
{
	const char *what = "set master";
	if (!check_name(what, name, err) || (master && !check_name(what, master, err)))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	AUTO_LINK *l = sk ? link_need(sk, what, name, err) : NULL;
	if (!l)
		return -1;
	int rc, index = 0;
	bool downed = false;
	if (master) {
		AUTO_LINK *m = link_get(sk, master, &rc);
		if (!m && rc < 0)
			return fail_nl(err, what, name, rc);
		if (!m) {
			XN_AUTOFREE char *r = xn_asprintf("no master '%s'", master);
			return fail(err, what, name, r);
		}
		index = rtnl_link_get_ifindex(m);
		if (rtnl_link_get_master(l) != index && xn_streq(link_kind(m), "bond") &&
		    (rtnl_link_get_flags(l) & IFF_UP)) {
			AUTO_LINK *down = must_ptr(rtnl_link_alloc());
			rtnl_link_unset_flags(down, IFF_UP);
			if (link_change(sk, l, down, what, name, err) < 0)
				return -1;
			downed = true;
		}
	}
	if (rtnl_link_get_master(l) == index)
		return 0;
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	rtnl_link_set_master(change, index);
	if (link_change(sk, l, change, what, name, err) < 0) {
		if (downed) { /* as it was */
			AUTO_LINK *up = must_ptr(rtnl_link_alloc());
			rtnl_link_set_flags(up, IFF_UP);
			rtnl_link_change(sk, l, up, 0);
		}
		return -1;
	}
	return 0;
}

int xn_nl_link_set_mtu(const char *name, unsigned mtu, xn_error **err)
{
	const char *what = "set mtu";
	if (!check_name(what, name, err))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	AUTO_LINK *l = sk ? link_need(sk, what, name, err) : NULL;
	if (!l)
		return -1;
	AUTO_LINK *change = must_ptr(rtnl_link_alloc());
	rtnl_link_set_mtu(change, mtu);
	return link_change(sk, l, change, what, name, err);
}

static int nft_rate_limit(const char *name, uint64_t bytes_per_s, xn_error **err);

/* Also drops name's ingress rate limit (see xn_nl_rate_limit), which
 * would otherwise outlive the link. */
int xn_nl_link_del(const char *name, xn_error **err)
{
	const char *what = "delete";
	if (!check_name(what, name, err))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	if (!sk)
		return -1;
	int rc;
	AUTO_LINK *l = link_get(sk, name, &rc);
	if (!l && rc < 0)
		return fail_nl(err, what, name, rc);
	if (l && (rc = rtnl_link_delete(sk, l)) < 0 && !missing(rc))
		return fail_nl(err, what, name, rc);
	nft_rate_limit(name, 0, NULL); /* best effort: see xn_nl_tap_open */
	return 0;
}

int xn_nl_bridge_add(const char *name, xn_error **err)
{
	const char *what = "bridge add";
	if (!check_name(what, name, err))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	if (!sk)
		return -1;
	int rc;
	AUTO_LINK *l = link_get(sk, name, &rc);
	if (!l && rc < 0)
		return fail_nl(err, what, name, rc);
	if (l && !xn_streq(link_kind(l), "bridge")) {
		XN_AUTOFREE char *r = xn_asprintf("exists and is not a bridge (kind '%s')", link_kind(l));
		return fail(err, what, name, r);
	}
	/* Two steps: the kernel refuses forward delay 0 while STP is on, and
	 * would apply the delay first if both came in one message. */
	static const struct info_attr stp_off[] = {{IFLA_BR_STP_STATE, 4, 0}};
	static const struct info_attr no_delay[] = {{IFLA_BR_FORWARD_DELAY, 4, 0}};
	if ((rc = newlink(sk, name, "bridge", NLM_F_CREATE, stp_off, 1)) < 0)
		return fail_add(err, what, name, "bridge", rc);
	if ((rc = newlink(sk, name, "bridge", 0, no_delay, 1)) < 0)
		return fail_nl(err, what, name, rc);
	return 0;
}

int xn_nl_vlan_add(const char *name, const char *parent, int vid, xn_error **err)
{
	const char *what = "vlan add";
	if (!check_name(what, name, err))
		return -1;
	if (vid < 1 || vid > 4094) {
		XN_AUTOFREE char *r = xn_asprintf("invalid VLAN id %d (1-4094)", vid);
		return fail(err, what, name, r);
	}
	if (!valid_name(parent)) {
		XN_AUTOFREE char *r = xn_asprintf("invalid parent name '%s'", parent ? parent : "");
		return fail(err, what, name, r);
	}
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	if (!sk)
		return -1;
	int rc;
	AUTO_LINK *p = link_get(sk, parent, &rc);
	if (!p) {
		XN_AUTOFREE char *r = xn_asprintf("no parent '%s'", parent);
		return rc < 0 ? fail_nl(err, what, name, rc) : fail(err, what, name, r);
	}
	int pindex = rtnl_link_get_ifindex(p);
	AUTO_LINK *l = link_get(sk, name, &rc);
	if (!l && rc < 0)
		return fail_nl(err, what, name, rc);
	if (l) {
		if (!rtnl_link_is_vlan(l) || rtnl_link_vlan_get_id(l) != vid ||
		    rtnl_link_get_link(l) != pindex) {
			XN_AUTOFREE char *r = xn_asprintf("exists and is not VLAN %d on '%s'", vid, parent);
			return fail(err, what, name, r);
		}
		AUTO_LINK *up = must_ptr(rtnl_link_alloc());
		rtnl_link_set_flags(up, IFF_UP);
		return link_change(sk, l, up, what, name, err);
	}
	AUTO_LINK *v = must_ptr(rtnl_link_vlan_alloc());
	rtnl_link_set_name(v, name);
	rtnl_link_set_link(v, pindex);
	rtnl_link_set_flags(v, IFF_UP);
	must(rtnl_link_vlan_set_id(v, vid));
	if ((rc = rtnl_link_add(sk, v, NLM_F_CREATE | NLM_F_EXCL)) < 0)
		return fail_add(err, what, name, "vlan", rc);
	return 0;
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
	if (m < 0) {
		XN_AUTOFREE char *r = xn_asprintf(
			"unknown bond mode '%s' (active-backup, balance-tlb or 802.3ad)", mode ? mode : "");
		return fail(err, what, name, r);
	}
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	if (!sk)
		return -1;
	int rc, have;
	AUTO_LINK *l = link_get(sk, name, &rc);
	if (!l && rc < 0)
		return fail_nl(err, what, name, rc);
	const struct info_attr opts[] = {{IFLA_BOND_MIIMON, 4, 100}, {IFLA_BOND_MODE, 1, (uint32_t)m}};
	if (!l) {
		if ((rc = newlink(sk, name, "bond", NLM_F_CREATE | NLM_F_EXCL, opts, 2)) < 0)
			return fail_add(err, what, name, "bond", rc);
		return 0;
	}
	if (!xn_streq(link_kind(l), "bond")) {
		XN_AUTOFREE char *r = xn_asprintf("exists and is not a bond (kind '%s')", link_kind(l));
		return fail(err, what, name, r);
	}
	/* The kernel changes a bond's mode only while it is down and has no
	 * ports: an existing bond in another mode is an error, not a change. */
	if ((rc = bond_mode_get(sk, rtnl_link_get_ifindex(l), &have)) < 0)
		return fail_nl(err, what, name, rc);
	if (have != m) {
		XN_AUTOFREE char *r = xn_asprintf("exists in another mode than '%s'", mode);
		return fail(err, what, name, r);
	}
	if ((rc = newlink(sk, name, "bond", 0, opts, 1)) < 0) /* miimon only */
		return fail_nl(err, what, name, rc);
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
		return fail(err, what, name, strerror(errno));
	struct ifreq ifr = {0};
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(t, TUNSETIFF, &ifr) < 0)
		return fail(err, what, name, strerror(errno));
	if (!existed)
		nft_rate_limit(name, 0, NULL); /* best effort: no nftables, no leftover */
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
	if (!check_name(what, name, err))
		return NULL;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	AUTO_LINK *l = sk ? link_need(sk, what, name, err) : NULL;
	if (!l)
		return NULL;
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_addr_alloc_cache(sk, &cache);
	if (rc < 0) {
		fail_nl(err, what, name, rc);
		return NULL;
	}
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
		XN_AUTOFREE char *r = xn_asprintf("invalid address '%s'", cidr ? cidr : "");
		fail(err, what, name, r);
		return NULL;
	}
	int rc;
	AUTO_LINK *l = link_get(sk, name, &rc);
	*gone = !l && rc == 0;
	if (!l) {
		rc < 0 ? fail_nl(err, what, name, rc) : fail(err, what, name, "no such device");
		return NULL;
	}
	struct rtnl_addr *ra = must_ptr(rtnl_addr_alloc());
	rtnl_addr_set_ifindex(ra, rtnl_link_get_ifindex(l));
	rtnl_addr_set_family(ra, nl_addr_get_family(a));
	must(rtnl_addr_set_local(ra, a));
	return ra;
}

int xn_nl_addr_add(const char *name, const char *cidr, xn_error **err)
{
	const char *what = "addr add";
	if (!check_name(what, name, err))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	bool gone;
	AUTO_RTADDR *ra = sk ? addr_of(sk, what, name, cidr, &gone, err) : NULL;
	if (!ra)
		return -1;
	int rc = rtnl_addr_add(sk, ra, NLM_F_EXCL);
	if (rc < 0 && rc != -NLE_EXIST) {
		XN_AUTOFREE char *r = xn_asprintf("'%s': %s", cidr, nl_geterror(rc));
		return fail(err, what, name, r);
	}
	return 0;
}

int xn_nl_addr_del(const char *name, const char *cidr, xn_error **err)
{
	const char *what = "addr del";
	if (!check_name(what, name, err))
		return -1;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	if (!sk)
		return -1;
	bool gone = false;
	XN_AUTOERR xn_error *e = NULL;
	AUTO_RTADDR *ra = addr_of(sk, what, name, cidr, &gone, &e);
	if (!ra)
		return gone ? 0 : xn_error_propagate(err, &e);
	int rc = rtnl_addr_delete(sk, ra, 0);
	if (rc < 0 && rc != -NLE_NOADDR && !missing(rc)) {
		XN_AUTOFREE char *r = xn_asprintf("'%s': %s", cidr, nl_geterror(rc));
		return fail(err, what, name, r);
	}
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
	if (!check_name(what, name, err))
		return NULL;
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	AUTO_LINK *l = sk ? link_need(sk, what, name, err) : NULL;
	if (!l)
		return NULL;
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &cache);
	if (rc < 0) {
		fail_nl(err, what, name, rc);
		return NULL;
	}
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
		XN_AUTOFREE char *r = xn_asprintf("invalid gateway '%s'", gateway);
		fail(err, what, shown, r);
		return NULL;
	}
	AUTO_ADDR *d = NULL;
	if (xn_streq(dst, "default")) {
		int family = gw ? nl_addr_get_family(gw) : AF_INET;
		unsigned char zero[16] = {0};
		d = must_ptr(nl_addr_build(family, zero, family == AF_INET ? 4 : 16));
		nl_addr_set_prefixlen(d, 0);
	} else if (!(d = parse_addr(dst, true))) {
		fail(err, what, shown, "invalid destination (a cidr or \"default\")");
		return NULL;
	}
	if (gw && nl_addr_get_family(gw) != nl_addr_get_family(d)) {
		XN_AUTOFREE char *r = xn_asprintf("gateway '%s' is not of the destination's family",
						  gateway);
		fail(err, what, shown, r);
		return NULL;
	}
	if (!valid_name(dev)) {
		XN_AUTOFREE char *r = xn_asprintf("invalid device name '%s'", dev ? dev : "");
		fail(err, what, shown, r);
		return NULL;
	}
	int rc;
	AUTO_LINK *l = link_get(sk, dev, &rc);
	*gone = !l && rc == 0;
	if (!l) {
		XN_AUTOFREE char *r = xn_asprintf("no such device '%s'", dev);
		rc < 0 ? fail_nl(err, what, shown, rc) : fail(err, what, shown, r);
		return NULL;
	}
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
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, dst ? dst : "(null)", err);
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
	if (rc == -NLE_EXIST) {
		XN_AUTOFREE char *m = xn_asprintf("another route with metric %u is there", metric);
		return fail(err, what, dst, m);
	}
	return rc < 0 ? fail_nl(err, what, dst, rc) : 0;
}

/* Removes the route to dst through dev (and gateway, if given) whatever
 * its metric and origin. */
int xn_nl_route_del(const char *dst, const char *gateway, const char *dev, xn_error **err)
{
	const char *what = "route del";
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, dst ? dst : "(null)", err);
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
	return rc < 0 && !missing(rc) ? fail_nl(err, what, dst, rc) : 0;
}

/* ---- rate limits ------------------------------------------------------ */

/* Egress: a root tbf qdisc at the rate, with a bucket of a tenth of a
 * second's traffic and at least 64 KiB (so that any frame fits whatever
 * the MTU; GSO packets larger than the bucket are split by tbf), and a
 * queue of 50 ms at the rate on top of the bucket; what does not fit is
 * dropped.
 *
 * Ingress: libnl 3.7 has no police action (tc-police) to attach to an
 * ingress qdisc's filter, and kernels may be built without act_police
 * (the test machines' are), so the policer is nftables': a table
 * "xenia-rl-<name>" of family netdev whose chain hooks the device's
 * ingress (after tc's ingress, before the bridge or the IP stack) and
 * drops what goes over "limit rate <rate> bytes/second burst 64 KiB".
 * nftables' limit keeps one second of tokens plus the burst, so a guest
 * may send up to that at once, then at the rate. No ifb device is
 * involved. A host firewall that flushes the whole ruleset (nft flush
 * ruleset) takes these tables with it. */

#define RL_LATENCY_US 50000
#define RL_MIN_BUCKET 65536
#define RL_MAX_KBPS ((uint64_t)INT32_MAX / 125) /* libnl's tbf rate is an int of bytes/s */

/* A message of the nftables subsystem (or a batch delimiter, with type
 * NFNL_MSG_BATCH_*), for batch_add. */
static struct nl_msg *nft_msg(int type, int flags)
{
	bool delim = type == NFNL_MSG_BATCH_BEGIN || type == NFNL_MSG_BATCH_END;
	struct nfgenmsg g = {
		.nfgen_family = delim ? AF_UNSPEC : NFPROTO_NETDEV,
		.version = NFNETLINK_V0,
		.res_id = htons(delim ? NFNL_SUBSYS_NFTABLES : 0),
	};
	int t = delim ? type : (NFNL_SUBSYS_NFTABLES << 8) | type;
	struct nl_msg *msg = must_ptr(nlmsg_alloc_simple(t, NLM_F_REQUEST | flags));
	must(nlmsg_append(msg, &g, sizeof(g), NLMSG_ALIGNTO));
	return msg;
}

/* nftables takes changes only as a batch: messages back to back in one
 * datagram, between BATCH_BEGIN and BATCH_END. */
struct nft_batch {
	xn_buf buf;
	uint32_t seq;
};

/* Appends msg (freed) to b; returns its sequence number. */
static uint32_t batch_add(struct nft_batch *b, struct nl_msg *msg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	h->nlmsg_seq = ++b->seq;
	xn_buf_append(&b->buf, h, NLMSG_ALIGN(h->nlmsg_len));
	nlmsg_free(msg);
	return b->seq;
}

static struct nl_msg *nft_table_msg(int type, const char *table)
{
	struct nl_msg *msg = nft_msg(type, NLM_F_ACK | (type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0));
	must(nla_put_string(msg, NFTA_TABLE_NAME, table));
	return msg;
}

static struct nl_msg *nft_chain_msg(const char *table, const char *dev)
{
	struct nl_msg *msg = nft_msg(NFT_MSG_NEWCHAIN, NLM_F_ACK | NLM_F_CREATE);
	must(nla_put_string(msg, NFTA_CHAIN_TABLE, table));
	must(nla_put_string(msg, NFTA_CHAIN_NAME, "ingress"));
	must(nla_put_string(msg, NFTA_CHAIN_TYPE, "filter"));
	must(nla_put_u32(msg, NFTA_CHAIN_POLICY, htonl(NF_ACCEPT)));
	struct nlattr *hook = must_ptr(nla_nest_start(msg, NFTA_CHAIN_HOOK));
	must(nla_put_u32(msg, NFTA_HOOK_HOOKNUM, htonl(NF_NETDEV_INGRESS)));
	must(nla_put_u32(msg, NFTA_HOOK_PRIORITY, htonl(0)));
	must(nla_put_string(msg, NFTA_HOOK_DEV, dev));
	nla_nest_end(msg, hook);
	return msg;
}

/* "limit rate over <rate> bytes/second burst 64 KiB drop" */
static struct nl_msg *nft_rule_msg(const char *table, uint64_t bytes_per_s)
{
	struct nl_msg *msg = nft_msg(NFT_MSG_NEWRULE, NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND);
	must(nla_put_string(msg, NFTA_RULE_TABLE, table));
	must(nla_put_string(msg, NFTA_RULE_CHAIN, "ingress"));
	struct nlattr *exprs = must_ptr(nla_nest_start(msg, NFTA_RULE_EXPRESSIONS));

	struct nlattr *e = must_ptr(nla_nest_start(msg, NFTA_LIST_ELEM));
	must(nla_put_string(msg, NFTA_EXPR_NAME, "limit"));
	struct nlattr *d = must_ptr(nla_nest_start(msg, NFTA_EXPR_DATA));
	must(nla_put_u64(msg, NFTA_LIMIT_RATE, htobe64(bytes_per_s)));
	must(nla_put_u64(msg, NFTA_LIMIT_UNIT, htobe64(1))); /* per second */
	must(nla_put_u32(msg, NFTA_LIMIT_BURST, htonl(RL_MIN_BUCKET)));
	must(nla_put_u32(msg, NFTA_LIMIT_TYPE, htonl(NFT_LIMIT_PKT_BYTES)));
	must(nla_put_u32(msg, NFTA_LIMIT_FLAGS, htonl(NFT_LIMIT_F_INV))); /* matches when over */
	nla_nest_end(msg, d);
	nla_nest_end(msg, e);

	e = must_ptr(nla_nest_start(msg, NFTA_LIST_ELEM));
	must(nla_put_string(msg, NFTA_EXPR_NAME, "immediate"));
	d = must_ptr(nla_nest_start(msg, NFTA_EXPR_DATA));
	must(nla_put_u32(msg, NFTA_IMMEDIATE_DREG, htonl(NFT_REG_VERDICT)));
	struct nlattr *data = must_ptr(nla_nest_start(msg, NFTA_IMMEDIATE_DATA));
	struct nlattr *verdict = must_ptr(nla_nest_start(msg, NFTA_DATA_VERDICT));
	must(nla_put_u32(msg, NFTA_VERDICT_CODE, htonl(NF_DROP)));
	nla_nest_end(msg, verdict);
	nla_nest_end(msg, data);
	nla_nest_end(msg, d);
	nla_nest_end(msg, e);

	nla_nest_end(msg, exprs);
	return msg;
}

/* The kernel answers each message flagged NLM_F_ACK of a batch, in order,
 * once the whole batch is done; a batch it refuses as a whole (no
 * nf_tables, no permission, a failed commit) gets one error for its
 * first message. */
struct nft_replies {
	uint32_t first, last;
	int error; /* the first -errno */
	bool done;
};

static int nft_on_ack(struct nl_msg *msg, void *arg)
{
	struct nft_replies *r = arg;
	if (nlmsg_hdr(msg)->nlmsg_seq != r->last)
		return NL_OK;
	r->done = true;
	return NL_STOP;
}

static int nft_on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nft_replies *r = arg;
	if (!r->error)
		r->error = e->error;
	if (e->msg.nlmsg_seq != r->last && e->msg.nlmsg_seq != r->first)
		return NL_OK;
	r->done = true;
	return NL_STOP;
}

static int nft_no_seq_check(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

/* Make (bytes_per_s > 0) or remove name's ingress limit, in one nftables
 * transaction: create the table (if missing), delete it with all it
 * holds, and for a limit create it again with its chain and rule. */
static int nft_rate_limit(const char *name, uint64_t bytes_per_s, xn_error **err)
{
	const char *what = "rate limit";
	AUTO_SOCK *sk = nl_open(NETLINK_NETFILTER, what, name, err);
	if (!sk)
		return -1;
	XN_AUTOFREE char *table = xn_asprintf("xenia-rl-%s", name);
	struct nft_batch b = {0};
	struct nft_replies r = {0};
	r.first = batch_add(&b, nft_msg(NFNL_MSG_BATCH_BEGIN, 0));
	batch_add(&b, nft_table_msg(NFT_MSG_NEWTABLE, table));
	r.last = batch_add(&b, nft_table_msg(NFT_MSG_DELTABLE, table));
	if (bytes_per_s) {
		batch_add(&b, nft_table_msg(NFT_MSG_NEWTABLE, table));
		batch_add(&b, nft_chain_msg(table, name));
		r.last = batch_add(&b, nft_rule_msg(table, bytes_per_s));
	}
	batch_add(&b, nft_msg(NFNL_MSG_BATCH_END, 0));
	int rc = nl_sendto(sk, b.buf.data, b.buf.len);
	free(b.buf.data);
	if (rc < 0)
		return fail_nl(err, what, name, rc);

	AUTO_CB *cb = must_ptr(nl_cb_alloc(NL_CB_DEFAULT));
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, nft_on_ack, &r);
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, nft_no_seq_check, NULL);
	nl_cb_err(cb, NL_CB_CUSTOM, nft_on_error, &r);
	while (!r.done)
		if ((rc = nl_recvmsgs(sk, cb)) < 0 && !r.done)
			return fail_nl(err, what, name, rc);
	if (r.error) {
		/* EOPNOTSUPP: no nf_tables; EAFNOSUPPORT: no netdev family;
		 * ENOENT: no limit expression */
		XN_AUTOFREE char *m = xn_asprintf("nftables refused the ingress limit: %s",
						  strerror(-r.error));
		return fail(err, what, name, m);
	}
	return 0;
}

static int tbf_set(struct nl_sock *sk, int ifindex, uint64_t bytes_per_s)
{
	AUTO_QDISC *q = must_ptr(rtnl_qdisc_alloc());
	uint64_t bucket = bytes_per_s / 10 > RL_MIN_BUCKET ? bytes_per_s / 10 : RL_MIN_BUCKET;
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	rtnl_tc_set_handle(TC_CAST(q), TC_HANDLE(1, 0));
	must(rtnl_tc_set_kind(TC_CAST(q), "tbf"));
	rtnl_qdisc_tbf_set_rate(q, (int)bytes_per_s, (int)bucket, 0);
	must(rtnl_qdisc_tbf_set_limit_by_latency(q, RL_LATENCY_US));
	return rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_REPLACE);
}

/* Removes the root qdisc of ifindex if it is a tbf (ours); the device
 * falls back to its default qdisc. */
static int tbf_remove(struct nl_sock *sk, int ifindex)
{
	AUTO_CACHE *cache = NULL;
	int rc = rtnl_qdisc_alloc_cache(sk, &cache);
	if (rc < 0)
		return rc;
	AUTO_QDISC *q = rtnl_qdisc_get_by_parent(cache, ifindex, TC_H_ROOT);
	if (!q || !xn_streq(rtnl_tc_get_kind(TC_CAST(q)), "tbf"))
		return 0;
	rc = rtnl_qdisc_delete(sk, q);
	return rc < 0 && !missing(rc) ? rc : 0;
}

int xn_nl_rate_limit(const char *name, uint64_t kbps, xn_error **err)
{
	const char *what = "rate limit";
	if (!check_name(what, name, err))
		return -1;
	if (kbps > RL_MAX_KBPS) {
		XN_AUTOFREE char *r = xn_asprintf("%llu kbps is too high (at most %llu)",
						  (unsigned long long)kbps,
						  (unsigned long long)RL_MAX_KBPS);
		return fail(err, what, name, r);
	}
	AUTO_SOCK *sk = nl_open(NETLINK_ROUTE, what, name, err);
	if (!sk)
		return -1;
	int rc;
	AUTO_LINK *l = link_get(sk, name, &rc);
	if (!l && rc < 0)
		return fail_nl(err, what, name, rc);
	if (!kbps) {
		if (l && (rc = tbf_remove(sk, rtnl_link_get_ifindex(l))) < 0)
			return fail_nl(err, what, name, rc);
		return nft_rate_limit(name, 0, err);
	}
	if (!l)
		return fail(err, what, name, "no such device");
	uint64_t bytes_per_s = kbps * 1000 / 8;
	if ((rc = tbf_set(sk, rtnl_link_get_ifindex(l), bytes_per_s)) < 0)
		return fail_nl(err, what, name, rc);
	if (nft_rate_limit(name, bytes_per_s, err) < 0) {
		tbf_remove(sk, rtnl_link_get_ifindex(l)); /* all or nothing */
		return -1;
	}
	return 0;
}
