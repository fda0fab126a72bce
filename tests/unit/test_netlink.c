/* Unit tests of netlink.c against the kernel itself. main() first moves
 * the process into a network namespace of its own (unshare(2), as
 * root), so nothing here sees or touches the machine's interfaces; the
 * devices are made there (veth pairs stand in for NICs) and vanish with
 * the process.
 *
 * A kernel built without bonding support (the test machines' kernel has
 * none) makes the bond test check the error the call gives instead, and
 * say so on stderr (VLANs and most bonds are eBPF ports: test_bpf_port.c). Rate limits are measured, not
 * only listed: frames written into a tap's descriptor are the guest's
 * traffic (the tap's ingress), frames sent through the tap are the
 * guest's incoming traffic (its egress), both counted. */
#include "net/netlink.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>

#include "check.h"
#include "check_err.h"

/* ---- helpers ---------------------------------------------------------- */

/* name's entry in the links listing (new reference), or NULL. */
static json_t *link_named(const char *name)
{
	xn_error *e = NULL;
	json_auto_t *links = xn_nl_links(&e);
	CHECK(links && !e);
	xn_error_free(e);
	size_t i;
	json_t *l;
	json_array_foreach(links, i, l) if (xn_streq(json_string_value(json_object_get(l, "name")),
						     name)) return json_incref(l);
	return NULL;
}

static const char *str_of(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A tap goes while its last descriptor closes; give the kernel a moment. */
static bool gone_soon(const char *name)
{
	for (int i = 0; i < 100 && xn_nl_link_exists(name); i++)
		usleep(10000);
	return !xn_nl_link_exists(name);
}

static struct nl_sock *route_sock(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (sk && nl_connect(sk, NETLINK_ROUTE) < 0) {
		nl_socket_free(sk);
		sk = NULL;
	}
	return sk;
}

/* A veth pair a/b, down: the test's stand-in for a NIC. */
static bool veth_add(const char *a, const char *b)
{
	struct nl_sock *sk = route_sock();
	int rc = sk ? rtnl_link_veth_add(sk, a, b, getpid()) : -1;
	nl_socket_free(sk);
	return rc == 0;
}

/* A u32 option of bridge name (IFLA_BR_*), read raw (libnl 3.7 does not
 * parse them); -1 if absent. */
struct br_opt {
	int type;
	long value;
};

static int br_opt_parse(struct nl_msg *msg, void *arg)
{
	struct br_opt *o = arg;
	struct nlattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1], *data[IFLA_BR_MAX + 1];
	if (nlmsg_parse(nlmsg_hdr(msg), sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) == 0 &&
	    tb[IFLA_LINKINFO] && nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) == 0 &&
	    info[IFLA_INFO_DATA] &&
	    nla_parse_nested(data, IFLA_BR_MAX, info[IFLA_INFO_DATA], NULL) == 0 && data[o->type])
		o->value = nla_get_u32(data[o->type]);
	return NL_OK;
}

static long bridge_opt(const char *name, int type)
{
	struct br_opt o = {type, -1};
	struct nl_sock *sk = route_sock();
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_GETLINK, 0);
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (sk && msg && cb && nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) == 0 &&
	    nla_put_string(msg, IFLA_IFNAME, name) == 0 && nl_send_auto(sk, msg) >= 0) {
		nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, br_opt_parse, &o);
		if (nl_recvmsgs(sk, cb) < 0 || nl_wait_for_ack(sk) < 0)
			o.value = -1;
	}
	nl_cb_put(cb);
	nlmsg_free(msg);
	nl_socket_free(sk);
	return o.value;
}

/* Set a u32 option of bridge name as someone else might have. */
static bool bridge_opt_set(const char *name, int type, uint32_t value)
{
	struct nl_sock *sk = route_sock();
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, 0);
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	int rc = -1;
	if (sk && msg && nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) == 0 &&
	    nla_put_string(msg, IFLA_IFNAME, name) == 0) {
		struct nlattr *info = nla_nest_start(msg, IFLA_LINKINFO);
		nla_put_string(msg, IFLA_INFO_KIND, "bridge");
		struct nlattr *data = nla_nest_start(msg, IFLA_INFO_DATA);
		nla_put_u32(msg, type, value);
		nla_nest_end(msg, data);
		nla_nest_end(msg, info);
		rc = nl_send_sync(sk, msg);
		msg = NULL;
	}
	nlmsg_free(msg);
	nl_socket_free(sk);
	return rc == 0;
}

/* The kind and rate (bytes/s, tbf only) of name's root qdisc, read from
 * libnl's qdisc cache; kind "" if it has none listed. */
static void root_qdisc(int ifindex, char kind[16], int *rate)
{
	struct nl_sock *sk = route_sock();
	struct nl_cache *cache = NULL;
	kind[0] = '\0';
	*rate = -1;
	if (sk && rtnl_qdisc_alloc_cache(sk, &cache) == 0) {
		struct rtnl_qdisc *q = rtnl_qdisc_get_by_parent(cache, ifindex, TC_H_ROOT);
		if (q) {
			snprintf(kind, 16, "%s", rtnl_tc_get_kind(TC_CAST(q)));
			if (xn_streq(kind, "tbf"))
				*rate = rtnl_qdisc_tbf_get_rate(q);
			rtnl_qdisc_put(q);
		}
		nl_cache_free(cache);
	}
	nl_socket_free(sk);
}

/* ---- traffic through a tap -------------------------------------------- */

#define ETHERTYPE_TEST 0x88b5 /* IEEE "local experimental" */
#define FRAME_LEN 1000
#define VNET_HDR_LEN 10       /* struct virtio_net_hdr, the tap's default */

static void frame(unsigned char *f)
{
	memset(f, 0, FRAME_LEN);
	memset(f, 0xff, 6);                                 /* broadcast */
	memcpy(f + 6, (unsigned char[]){0x02, 0, 0, 0, 0, 1}, 6); /* a guest */
	f[12] = ETHERTYPE_TEST >> 8;
	f[13] = ETHERTYPE_TEST & 0xff;
}

/* Frames of ours that arrive on sock until it has been idle for idle_ms
 * or deadline_ms have passed. sock is a tap descriptor (frames follow a
 * virtio-net header) or a packet socket. */
static int count_frames(int sock, bool tap, int idle_ms, int deadline_ms)
{
	unsigned char buf[4096];
	int n = 0;
	uint64_t end = xn_now_ms() + deadline_ms;
	struct pollfd p = {.fd = sock, .events = POLLIN};
	while (xn_now_ms() < end && poll(&p, 1, idle_ms) == 1) {
		ssize_t r = read(sock, buf, sizeof(buf));
		size_t off = tap ? VNET_HDR_LEN : 0;
		if (r >= (ssize_t)(off + 14) && buf[off + 12] == (ETHERTYPE_TEST >> 8) &&
		    buf[off + 13] == (ETHERTYPE_TEST & 0xff))
			n++;
	}
	return n;
}

/* From the guest: n frames written into the tap, counted where the host
 * receives them (a packet socket for our ethertype is served after the
 * device's ingress hooks, tc's and nftables'). */
static int guest_to_host(int tapfd, const char *name, int n)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETHERTYPE_TEST));
	int big = 16 << 20;
	struct sockaddr_ll a = {.sll_family = AF_PACKET,
				.sll_protocol = htons(ETHERTYPE_TEST),
				.sll_ifindex = (int)if_nametoindex(name)};
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "  packet socket: %s\n", strerror(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	unsigned char buf[VNET_HDR_LEN + FRAME_LEN] = {0};
	frame(buf + VNET_HDR_LEN);
	for (int i = 0; i < n; i++)
		if (write(tapfd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			fprintf(stderr, "  tap write: %s\n", strerror(errno));
	int got = count_frames(s, false, 200, 2000);
	close(s);
	return got;
}

/* To the guest: n frames sent through the tap (its egress, where qdiscs
 * are), counted as the guest reads them from the descriptor within
 * window_ms. */
static int host_to_guest(int tapfd, const char *name, int n, int window_ms)
{
	count_frames(tapfd, true, 50, 3000); /* leftovers of an earlier round */
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	struct sockaddr_ll a = {.sll_family = AF_PACKET,
				.sll_ifindex = (int)if_nametoindex(name),
				.sll_halen = 6,
				.sll_addr = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	if (s < 0)
		return -1;
	unsigned char f[FRAME_LEN];
	frame(f);
	for (int i = 0; i < n; i++)
		sendto(s, f, sizeof(f), 0, (struct sockaddr *)&a, sizeof(a)); /* drops: ENOBUFS */
	close(s);
	return count_frames(tapfd, true, window_ms, window_ms);
}

/* ---- tests ------------------------------------------------------------ */

TEST(test_namespace)
{
	xn_error *e = NULL;
	CHECK(ok(xn_nl_link_set_up("lo", true, &e), &e));
	json_auto_t *links = xn_nl_links(&e);
	CHECK(links && json_array_size(links) >= 1 && !e);
	/* a namespace of our own: no NIC but lo (a kernel may add its
	 * fallback tunnel devices, which have a kind) */
	size_t i;
	json_t *l;
	json_array_foreach(links, i, l) if (!*str_of(l, "kind")) CHECK_STR(str_of(l, "name"), "lo");
	json_auto_t *lo = link_named("lo");
	CHECK(lo && json_is_true(json_object_get(lo, "up")));
	CHECK_STR(str_of(lo, "kind"), "");
	CHECK_STR(str_of(lo, "mac"), "00:00:00:00:00:00");
	CHECK(json_is_null(json_object_get(lo, "master")));
	CHECK(xn_nl_link_exists("lo"));
	CHECK(!xn_nl_link_exists("eth0"));
	CHECK(!xn_nl_link_exists("far-too-long-a-name"));
}

TEST(test_bridge)
{
	xn_error *e = NULL;
	CHECK(ok(xn_nl_bridge_add("xbr0", &e), &e));
	CHECK(ok(xn_nl_bridge_add("xbr0", &e), &e)); /* already there */
	json_auto_t *br = link_named("xbr0");
	CHECK(br);
	CHECK_STR(str_of(br, "kind"), "bridge");
	CHECK(json_is_true(json_object_get(br, "up")));
	const char *mac = str_of(br, "mac");
	CHECK(mac && strlen(mac) == 17 && mac[2] == ':' && mac[14] == ':' &&
	      strspn(mac, "0123456789abcdef:") == 17);
	CHECK(json_integer_value(json_object_get(br, "index")) > 1);
	CHECK(bridge_opt("xbr0", IFLA_BR_FORWARD_DELAY) == 0);
	CHECK(bridge_opt("xbr0", IFLA_BR_STP_STATE) == 0);

	/* someone turned STP on with the usual 15 s delay: put back */
	CHECK(bridge_opt_set("xbr0", IFLA_BR_FORWARD_DELAY, 1500));
	CHECK(bridge_opt_set("xbr0", IFLA_BR_STP_STATE, 1));
	CHECK(bridge_opt("xbr0", IFLA_BR_STP_STATE) == 1);
	CHECK(ok(xn_nl_bridge_add("xbr0", &e), &e));
	CHECK(bridge_opt("xbr0", IFLA_BR_STP_STATE) == 0);
	CHECK(bridge_opt("xbr0", IFLA_BR_FORWARD_DELAY) == 0);

	/* a port; deleting the bridge releases it */
	CHECK(veth_add("xbp0", "xbp1"));
	CHECK(failed_with(xn_nl_bridge_add("xbp0", &e), &e,
			  "netlink: bridge add xbp0: exists and is not a bridge"));
	CHECK(ok(xn_nl_link_set_master("xbp0", "xbr0", &e), &e));
	json_auto_t *port = link_named("xbp0");
	CHECK_STR(str_of(port, "master"), "xbr0");
	CHECK_STR(str_of(port, "kind"), "veth");
	CHECK(ok(xn_nl_link_del("xbr0", &e), &e));
	CHECK(!xn_nl_link_exists("xbr0"));
	json_auto_t *freed = link_named("xbp0");
	CHECK(freed && json_is_null(json_object_get(freed, "master")));
	CHECK(ok(xn_nl_link_del("xbr0", &e), &e)); /* already gone */
	CHECK(ok(xn_nl_link_del("xbp0", &e), &e));
	CHECK(!xn_nl_link_exists("xbp0") && !xn_nl_link_exists("xbp1")); /* a veth goes in pairs */

	CHECK(failed_with(xn_nl_bridge_add("a-name-too-long-for-linux", &e), &e,
			  "netlink: bridge add a-name-too-long-for-linux: invalid interface name"));
}

TEST(test_tap)
{
	xn_error *e = NULL;
	int fd = -1;
	CHECK(ok(xn_nl_tap_open("xtap0", &fd, &e), &e));
	CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
	struct ifreq ifr = {0};
	CHECK(ioctl(fd, TUNGETIFF, &ifr) == 0);
	CHECK((ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)) ==
	      (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR));
	CHECK_STR(ifr.ifr_name, "xtap0");
	json_auto_t *tap = link_named("xtap0");
	CHECK_STR(str_of(tap, "kind"), "tun");

	/* taken while open (it is one queue, held by one descriptor) */
	int fd2 = -1;
	CHECK(failed_with(xn_nl_tap_open("xtap0", &fd2, &e), &e, "netlink: tap open xtap0: "));
	CHECK(fd2 == -1);

	CHECK(ok(xn_nl_bridge_add("xbr1", &e), &e));
	CHECK(ok(xn_nl_link_set_master("xtap0", "xbr1", &e), &e));
	CHECK(ok(xn_nl_link_set_master("xtap0", "xbr1", &e), &e));
	json_auto_t *in = link_named("xtap0");
	CHECK_STR(str_of(in, "master"), "xbr1");
	CHECK(ok(xn_nl_link_set_master("xtap0", NULL, &e), &e));
	json_auto_t *out = link_named("xtap0");
	CHECK(out && json_is_null(json_object_get(out, "master")));
	CHECK(failed_with(xn_nl_link_set_master("xtap0", "nobr0", &e), &e,
			  "netlink: set master xtap0: no master 'nobr0'"));
	CHECK(failed_with(xn_nl_link_set_master("notap0", "xbr1", &e), &e,
			  "netlink: set master notap0: no such device"));

	CHECK(ok(xn_nl_link_set_mtu("xtap0", 1400, &e), &e));
	CHECK(ok(xn_nl_link_set_up("xtap0", true, &e), &e));
	json_auto_t *up = link_named("xtap0");
	CHECK(json_integer_value(json_object_get(up, "mtu")) == 1400);
	CHECK(json_is_true(json_object_get(up, "up")));
	CHECK(json_is_true(json_object_get(up, "carrier"))); /* a descriptor is attached */
	CHECK(ok(xn_nl_link_set_up("xtap0", false, &e), &e));
	json_auto_t *down = link_named("xtap0");
	CHECK(json_is_false(json_object_get(down, "up")));
	CHECK(failed_with(xn_nl_link_set_up("notap0", true, &e), &e,
			  "netlink: set up notap0: no such device"));

	CHECK(xn_nl_link_exists("xtap0"));
	close(fd);
	CHECK(gone_soon("xtap0"));

	/* a name taken by another kind of device */
	CHECK(failed_with(xn_nl_tap_open("xbr1", &fd2, &e), &e, "netlink: tap open xbr1: "));
	CHECK(ok(xn_nl_link_del("xbr1", &e), &e));
}

TEST(test_veth)
{
	xn_error *e = NULL;
	CHECK(ok(xn_nl_veth_add("xva0", "xva1", &e), &e));
	CHECK(ok(xn_nl_veth_add("xva0", "xva1", &e), &e)); /* already there */
	json_auto_t *a = link_named("xva0"), *b = link_named("xva1");
	CHECK_STR(str_of(a, "kind"), "veth");
	CHECK(json_is_true(json_object_get(a, "up")) && json_is_true(json_object_get(b, "up")));
	CHECK(failed_with(xn_nl_veth_add("xva0", "xvz1", &e), &e,
			  "netlink: veth add xva0: exists and is not a veth pair with 'xvz1'"));
	CHECK(!xn_nl_link_exists("xvz1"));
	CHECK(ok(xn_nl_link_set_promisc("xva0", true, &e), &e));
	CHECK(ok(xn_nl_link_set_promisc("xva0", true, &e), &e));
	CHECK(failed_with(xn_nl_link_set_promisc("nodev0", true, &e), &e,
			  "netlink: set promisc nodev0: no such device"));
	CHECK(ok(xn_nl_link_del("xva0", &e), &e));
	CHECK(!xn_nl_link_exists("xva1")); /* a pair goes together */
}

TEST(test_bond)
{
	xn_error *e = NULL;
	CHECK(failed_with(xn_nl_bond_add("xbond0", "balance-slb", &e), &e,
			  "netlink: bond add xbond0: unknown bond mode 'balance-slb'"));
	CHECK(veth_add("xbs0", "xbs0p"));
	CHECK(veth_add("xbs1", "xbs1p"));
	int rc = xn_nl_bond_add("xbond0", "active-backup", &e);
	if (rc < 0 && e && strstr(e->params[0], "does not support 'bond' links")) {
		fprintf(stderr, "  note: this kernel has no bonding; checked its error\n");
		CHECK(failed_with(rc, &e, "netlink: bond add xbond0: the kernel does not support"));
		CHECK(!xn_nl_link_exists("xbond0"));
	} else {
		CHECK(ok(rc, &e));
		CHECK(ok(xn_nl_bond_add("xbond0", "active-backup", &e), &e)); /* already there */
		CHECK(failed_with(xn_nl_bond_add("xbond0", "802.3ad", &e), &e,
				  "netlink: bond add xbond0: exists in another mode"));
		json_auto_t *b = link_named("xbond0");
		CHECK_STR(str_of(b, "kind"), "bond");
		CHECK(json_is_true(json_object_get(b, "up")));
		CHECK(ok(xn_nl_link_set_up("xbs0", true, &e), &e)); /* a bond wants ports down */
		CHECK(ok(xn_nl_link_set_master("xbs0", "xbond0", &e), &e));
		CHECK(ok(xn_nl_link_set_master("xbs1", "xbond0", &e), &e));
		json_auto_t *s0 = link_named("xbs0"), *s1 = link_named("xbs1");
		CHECK_STR(str_of(s0, "master"), "xbond0");
		CHECK_STR(str_of(s1, "master"), "xbond0");
		CHECK(ok(xn_nl_link_del("xbond0", &e), &e));
		CHECK(!xn_nl_link_exists("xbond0") && xn_nl_link_exists("xbs0"));
	}
	CHECK(ok(xn_nl_link_del("xbs0", &e), &e));
	CHECK(ok(xn_nl_link_del("xbs1", &e), &e));
}

/* family/address/prefix entries of name's address listing */
static int addr_count(const char *name, int family, const char *address, int prefix)
{
	xn_error *e = NULL;
	json_auto_t *addrs = xn_nl_addrs(name, &e);
	CHECK(addrs && !e);
	xn_error_free(e);
	int n = 0;
	size_t i;
	json_t *a;
	json_array_foreach(addrs, i, a) n +=
		json_integer_value(json_object_get(a, "family")) == family &&
		xn_streq(str_of(a, "address"), address) &&
		json_integer_value(json_object_get(a, "prefix")) == prefix;
	return n;
}

TEST(test_addrs)
{
	xn_error *e = NULL;
	CHECK(veth_add("xad0", "xad1"));
	CHECK(ok(xn_nl_addr_add("xad0", "10.9.0.1/24", &e), &e));
	CHECK(ok(xn_nl_addr_add("xad0", "fd00:9::1/64", &e), &e));
	CHECK(ok(xn_nl_addr_add("xad0", "10.9.0.1/24", &e), &e)); /* already there */
	CHECK(ok(xn_nl_addr_add("xad0", "fd00:9::1/64", &e), &e));
	CHECK(addr_count("xad0", 4, "10.9.0.1", 24) == 1);
	CHECK(addr_count("xad0", 6, "fd00:9::1", 64) == 1);
	CHECK(addr_count("xad1", 4, "10.9.0.1", 24) == 0);

	static const char *bad[] = {"10.9.0.1", "10.9.0.300/24", "fd00::1/129", "10.9.0.1/24x",
				    "10.9.0.1/", "/24", "fd00::zz/64"};
	for (size_t i = 0; i < XN_ARRAY_LEN(bad); i++)
		CHECK(failed_with(xn_nl_addr_add("xad0", bad[i], &e), &e,
				  "netlink: addr add xad0: invalid address"));
	CHECK(failed_with(xn_nl_addr_add("nodev0", "10.9.0.1/24", &e), &e,
			  "netlink: addr add nodev0: no such device"));
	json_t *none = xn_nl_addrs("nodev0", &e);
	CHECK(!none && failed_with(-1, &e, "netlink: list addresses nodev0: no such device"));

	CHECK(ok(xn_nl_addr_del("xad0", "10.9.0.1/24", &e), &e));
	CHECK(ok(xn_nl_addr_del("xad0", "fd00:9::1/64", &e), &e));
	CHECK(addr_count("xad0", 4, "10.9.0.1", 24) == 0);
	CHECK(addr_count("xad0", 6, "fd00:9::1", 64) == 0);
	CHECK(ok(xn_nl_addr_del("xad0", "10.9.0.1/24", &e), &e)); /* already gone */
	CHECK(ok(xn_nl_addr_del("nodev0", "10.9.0.1/24", &e), &e));
	CHECK(failed_with(xn_nl_addr_del("xad0", "10.9.0.1", &e), &e,
			  "netlink: addr del xad0: invalid address"));
	CHECK(ok(xn_nl_link_del("xad0", &e), &e));
}

/* entries of dev's route listing with these values (gateway NULL: none) */
static int route_count(const char *dev, int family, const char *dst, const char *gateway,
		       int metric)
{
	xn_error *e = NULL;
	json_auto_t *routes = xn_nl_routes(dev, &e);
	CHECK(routes && !e);
	xn_error_free(e);
	int n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(routes, i, r) n +=
		json_integer_value(json_object_get(r, "family")) == family &&
		xn_streq(str_of(r, "dst"), dst) &&
		(gateway ? xn_streq(str_of(r, "gateway"), gateway)
			 : json_is_null(json_object_get(r, "gateway"))) &&
		json_integer_value(json_object_get(r, "metric")) == metric;
	return n;
}

TEST(test_routes)
{
	xn_error *e = NULL;
	CHECK(veth_add("xrt0", "xrt1"));
	CHECK(ok(xn_nl_link_set_up("xrt0", true, &e), &e));
	CHECK(ok(xn_nl_link_set_up("xrt1", true, &e), &e));
	CHECK(ok(xn_nl_addr_add("xrt0", "10.10.0.1/24", &e), &e));
	CHECK(ok(xn_nl_addr_add("xrt0", "fd00:10::1/64", &e), &e));
	CHECK(route_count("xrt0", 4, "10.10.0.0/24", NULL, 0) == 1); /* the kernel's own */

	CHECK(ok(xn_nl_route_add("10.20.0.0/16", "10.10.0.2", "xrt0", 100, &e), &e));
	CHECK(ok(xn_nl_route_add("10.20.0.0/16", "10.10.0.2", "xrt0", 100, &e), &e));
	CHECK(route_count("xrt0", 4, "10.20.0.0/16", "10.10.0.2", 100) == 1);
	CHECK(failed_with(xn_nl_route_add("10.20.0.0/16", "10.10.0.3", "xrt0", 100, &e), &e,
			  "netlink: route add 10.20.0.0/16: another route with metric 100"));
	CHECK(ok(xn_nl_route_add("10.20.0.0/16", "10.10.0.3", "xrt0", 101, &e), &e));
	CHECK(ok(xn_nl_route_add("10.30.0.0/24", NULL, "xrt0", 0, &e), &e));
	CHECK(route_count("xrt0", 4, "10.30.0.0/24", NULL, 0) == 1);
	CHECK(ok(xn_nl_route_add("default", "10.10.0.254", "xrt0", 50, &e), &e));
	CHECK(route_count("xrt0", 4, "default", "10.10.0.254", 50) == 1);
	CHECK(ok(xn_nl_route_add("fd00:20::/48", "fd00:10::2", "xrt0", 10, &e), &e));
	CHECK(route_count("xrt0", 6, "fd00:20::/48", "fd00:10::2", 10) == 1);
	CHECK(ok(xn_nl_route_add("default", "fd00:10::fe", "xrt0", 20, &e), &e));
	CHECK(route_count("xrt0", 6, "default", "fd00:10::fe", 20) == 1);
	CHECK(route_count("xrt1", 4, "10.20.0.0/16", "10.10.0.2", 100) == 0);

	CHECK(failed_with(xn_nl_route_add("10.20.0.0", "10.10.0.2", "xrt0", 1, &e), &e,
			  "netlink: route add 10.20.0.0: invalid destination"));
	CHECK(failed_with(xn_nl_route_add("10.40.0.0/16", "fd00:10::2", "xrt0", 1, &e), &e,
			  "netlink: route add 10.40.0.0/16: gateway 'fd00:10::2' is not of"));
	CHECK(failed_with(xn_nl_route_add("10.40.0.0/16", "10.10.0.2", "nodev0", 1, &e), &e,
			  "netlink: route add 10.40.0.0/16: no such device 'nodev0'"));
	CHECK(failed_with(xn_nl_route_add("10.40.0.0/16", "10.99.0.2", "xrt0", 1, &e), &e,
			  "netlink: route add 10.40.0.0/16: ")); /* gateway not on the link */
	CHECK(route_count("xrt0", 4, "10.40.0.0/16", "10.99.0.2", 1) == 0);

	CHECK(ok(xn_nl_route_del("10.20.0.0/16", "10.10.0.3", "xrt0", &e), &e));
	CHECK(route_count("xrt0", 4, "10.20.0.0/16", "10.10.0.3", 101) == 0);
	CHECK(route_count("xrt0", 4, "10.20.0.0/16", "10.10.0.2", 100) == 1);
	CHECK(ok(xn_nl_route_del("10.20.0.0/16", NULL, "xrt0", &e), &e));
	CHECK(route_count("xrt0", 4, "10.20.0.0/16", "10.10.0.2", 100) == 0);
	CHECK(ok(xn_nl_route_del("10.20.0.0/16", NULL, "xrt0", &e), &e)); /* already gone */
	CHECK(ok(xn_nl_route_del("10.30.0.0/24", NULL, "xrt0", &e), &e));
	CHECK(ok(xn_nl_route_del("default", "10.10.0.254", "xrt0", &e), &e));
	CHECK(ok(xn_nl_route_del("fd00:20::/48", "fd00:10::2", "xrt0", &e), &e));
	CHECK(ok(xn_nl_route_del("default", "fd00:10::fe", "xrt0", &e), &e));
	CHECK(route_count("xrt0", 4, "10.30.0.0/24", NULL, 0) == 0);
	CHECK(route_count("xrt0", 4, "default", "10.10.0.254", 50) == 0);
	CHECK(route_count("xrt0", 6, "fd00:20::/48", "fd00:10::2", 10) == 0);
	CHECK(route_count("xrt0", 6, "default", "fd00:10::fe", 20) == 0);
	CHECK(ok(xn_nl_route_del("10.20.0.0/16", NULL, "nodev0", &e), &e));
	json_t *none = xn_nl_routes("nodev0", &e);
	CHECK(!none && failed_with(-1, &e, "netlink: list routes nodev0: no such device"));
	CHECK(ok(xn_nl_link_del("xrt0", &e), &e));
}

TEST(test_rate_limit)
{
	xn_error *e = NULL;
	int fd = -1;
	CHECK(ok(xn_nl_tap_open("xrl0", &fd, &e), &e));
	CHECK(ok(xn_nl_link_set_up("xrl0", true, &e), &e));
	int ifindex = (int)if_nametoindex("xrl0");
	const int n = 400; /* 400 frames of 1000 bytes: 400 kB at once */

	/* without a limit everything passes */
	CHECK(guest_to_host(fd, "xrl0", n) == n);
	CHECK(host_to_guest(fd, "xrl0", n, 300) == n);

	/* 800 kbit/s = 100,000 bytes/s */
	CHECK(ok(xn_nl_rate_limit("xrl0", 800, &e), &e));
	CHECK(ok(xn_nl_rate_limit("xrl0", 800, &e), &e)); /* again: replaced */
	char kind[16];
	int rate;
	root_qdisc(ifindex, kind, &rate);
	CHECK_STR(kind, "tbf");
	CHECK(rate == 100000);
	/* guest to host: nftables' bucket, one second at the rate plus 64 KiB
	 * (about 168 frames of 986 bytes past the Ethernet header), passes
	 * at once, the rest is dropped */
	int in = guest_to_host(fd, "xrl0", n);
	fprintf(stderr, "  limited guest->host: %d of %d frames\n", in, n);
	CHECK(in >= 120 && in <= 260);
	/* host to guest: tbf's 64 KiB bucket at once, then 100 kB/s (30
	 * frames in 300 ms) from its queue; the rest is dropped */
	int out = host_to_guest(fd, "xrl0", n, 300);
	fprintf(stderr, "  limited host->guest: %d of %d frames in 300 ms\n", out, n);
	CHECK(out >= 50 && out <= 160);

	CHECK(ok(xn_nl_rate_limit("xrl0", 0, &e), &e));
	CHECK(ok(xn_nl_rate_limit("xrl0", 0, &e), &e)); /* already gone */
	root_qdisc(ifindex, kind, &rate);
	CHECK(!xn_streq(kind, "tbf"));
	CHECK(guest_to_host(fd, "xrl0", n) == n);
	CHECK(host_to_guest(fd, "xrl0", n, 300) == n);

	/* a limit does not outlive its tap into the next of the same name */
	CHECK(ok(xn_nl_rate_limit("xrl0", 800, &e), &e));
	close(fd);
	CHECK(gone_soon("xrl0"));
	CHECK(ok(xn_nl_tap_open("xrl0", &fd, &e), &e));
	CHECK(ok(xn_nl_link_set_up("xrl0", true, &e), &e));
	root_qdisc((int)if_nametoindex("xrl0"), kind, &rate);
	CHECK(!xn_streq(kind, "tbf"));
	CHECK(guest_to_host(fd, "xrl0", n) == n);
	close(fd);
	CHECK(gone_soon("xrl0"));

	/* nftables keeps a gone tap's ingress limit until it is dropped by
	 * name or by the sweep, which keeps those of taps still there */
	int fd1 = -1, fd2 = -1;
	CHECK(ok(xn_nl_tap_open("xrl1", &fd1, &e), &e));
	CHECK(ok(xn_nl_tap_open("xrl2", &fd2, &e), &e));
	CHECK(ok(xn_nl_tap_open("xrl3", &fd, &e), &e));
	CHECK(ok(xn_nl_rate_limit("xrl1", 800, &e), &e));
	CHECK(ok(xn_nl_rate_limit("xrl2", 800, &e), &e));
	CHECK(ok(xn_nl_rate_limit("xrl3", 800, &e), &e));
	close(fd1);
	close(fd2);
	CHECK(gone_soon("xrl1") && gone_soon("xrl2"));
	CHECK(ok(xn_nl_rate_limit_drop("xrl2", &e), &e));
	CHECK(ok(xn_nl_rate_limit_drop("xrl2", &e), &e)); /* already gone */
	CHECK(xn_nl_rate_limit_sweep(&e) == 1);           /* xrl1's */
	CHECK(xn_nl_rate_limit_sweep(&e) == 0);
	close(fd);
	CHECK(gone_soon("xrl3"));
	CHECK(xn_nl_rate_limit_sweep(&e) == 1);
	CHECK(!e);

	CHECK(failed_with(xn_nl_rate_limit("nodev0", 800, &e), &e,
			  "netlink: rate limit nodev0: no such device"));
	CHECK(ok(xn_nl_rate_limit("nodev0", 0, &e), &e));
	CHECK(failed_with(xn_nl_rate_limit("lo", UINT64_MAX, &e), &e,
			  "netlink: rate limit lo: 18446744073709551615 kbps is too high"));
}

int main(void)
{
	/* Everything below acts in this new namespace only. */
	if (unshare(CLONE_NEWNET) < 0) {
		printf("FAIL test_netlink: unshare(CLONE_NEWNET): %s (the unit tests run as root)\n",
		       strerror(errno));
		return 1;
	}
	RUN(test_namespace);
	RUN(test_bridge);
	RUN(test_tap);
	RUN(test_veth);
	RUN(test_bond);
	RUN(test_addrs);
	RUN(test_routes);
	RUN(test_rate_limit);
	CHECK_EXIT();
}
