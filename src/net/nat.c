/* nat.c: NAT networks (net.h), libvirt's "default" network done the xapi
 * way.
 *
 * A NAT network is an ordinary network record whose other_config has
 * xapi's host-internal keys "ip_begin", "ip_end" and "netmask" (those
 * xapi gives its internal management network) plus "xenia-nat": "true",
 * and optionally "gateway". When its bridge is made (a VM starts with a
 * VIF on it), and at daemon start for such a network whose bridge is
 * there, the daemon
 *   - gives the bridge the gateway address (the subnet's .1 unless
 *     "gateway" says otherwise),
 *   - runs a dnsmasq serving DHCP (and DNS, forwarded to the host's
 *     resolvers) on that bridge only, leases in DATA/dnsmasq-<bridge>.leases,
 *   - turns IPv4 forwarding on (the bridge's, and the host's global switch:
 *     replies come back in through whatever interface took the traffic
 *     out, which must forward too; no address or route of any other
 *     interface is touched),
 *   - puts two chains in the nftables table "xenia-nat" (family ip):
 *     "post-<bridge>" masquerades what leaves the subnet through any
 *     interface but the bridge, "fwd-<bridge>" accepts the subnet's
 *     forwarded traffic and the replies to it.
 * network.destroy undoes all this (xn_nat_down).
 *
 * dnsmasq runs as a daemon of its own, like a VM's QEMU: it outlives a
 * stopped or killed xeniad, so guests keep their leases. It is known by
 * its command line, which names its pid file DATA/run/dnsmasq-<bridge>.pid:
 * before starting one the daemon looks in /proc for every dnsmasq naming
 * that pid file, keeps one whose command line is exactly the one it would
 * run and stops all others, so a restart (even after kill -9) never leaves
 * two.
 *
 * nftables changes are nfnetlink transactions (nft.h), as the rate
 * limits' are. */
#include "net/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include <netlink/msg.h>

#include "net/netlink.h"
#include "net/nft.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

#define NAT_TABLE "xenia-nat"

/* ---- configuration ------------------------------------------------------ */

/* A NAT network's addresses, host byte order, and their text. */
struct nat_cfg {
	uint32_t net, mask, begin, end, gw;
	int prefix;
	char begin_s[INET_ADDRSTRLEN], end_s[INET_ADDRSTRLEN], mask_s[INET_ADDRSTRLEN];
	char gw_cidr[INET_ADDRSTRLEN + 3], net_cidr[INET_ADDRSTRLEN + 3];
};

static bool ip4(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

static void ip4_str(uint32_t a, char *buf)
{
	struct in_addr x = {htonl(a)};
	inet_ntop(AF_INET, &x, buf, INET_ADDRSTRLEN);
}

static int mask_prefix(uint32_t mask)
{
	int n = __builtin_popcount(mask);
	return mask == (n ? ~0u << (32 - n) : 0) ? n : -1;
}

bool xn_nat_is(json_t *other_config)
{
	return xn_streq(json_string_value(json_object_get(other_config, "xenia-nat")), "true");
}

/* Parse and check a NAT network's other_config; INVALID_VALUE naming the
 * key at fault. */
static int nat_cfg(json_t *oc, struct nat_cfg *c, xn_error **err)
{
	static const char *keys[] = {"ip_begin", "ip_end", "netmask"};
	uint32_t *vals[] = {&c->begin, &c->end, &c->mask};
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < 3; i++) {
		const char *s = json_string_value(json_object_get(oc, keys[i]));
		if (!ip4(s, vals[i]))
			return xn_fail(err, "INVALID_VALUE", keys[i], s ? s : "", NULL);
	}
	c->prefix = mask_prefix(c->mask);
	if (c->prefix < 8 || c->prefix > 30)
		return xn_fail(err, "INVALID_VALUE", "netmask",
			       json_string_value(json_object_get(oc, "netmask")), NULL);
	c->net = c->begin & c->mask;
	const char *gw = json_string_value(json_object_get(oc, "gateway"));
	if (gw && gw[0]) {
		if (!ip4(gw, &c->gw) || (c->gw & c->mask) != c->net)
			return xn_fail(err, "INVALID_VALUE", "gateway", gw, NULL);
	} else {
		c->gw = c->net + 1;
	}
	uint32_t bcast = c->net | ~c->mask;
	if ((c->end & c->mask) != c->net || c->end < c->begin || c->begin == c->net ||
	    c->end == bcast)
		return xn_fail(err, "INVALID_VALUE", "ip_end",
			       json_string_value(json_object_get(oc, "ip_end")), NULL);
	if (c->gw == c->net || c->gw == bcast || (c->gw >= c->begin && c->gw <= c->end))
		return xn_fail(err, "INVALID_VALUE", "gateway",
			       "the gateway must be in the subnet, outside ip_begin..ip_end", NULL);
	char net_s[INET_ADDRSTRLEN], gw_s[INET_ADDRSTRLEN];
	ip4_str(c->begin, c->begin_s);
	ip4_str(c->end, c->end_s);
	ip4_str(c->mask, c->mask_s);
	ip4_str(c->net, net_s);
	ip4_str(c->gw, gw_s);
	snprintf(c->gw_cidr, sizeof(c->gw_cidr), "%s/%d", gw_s, c->prefix);
	snprintf(c->net_cidr, sizeof(c->net_cidr), "%s/%d", net_s, c->prefix);
	return 0;
}

int xn_nat_check(json_t *other_config, xn_error **err)
{
	struct nat_cfg c;
	return xn_nat_is(other_config) ? nat_cfg(other_config, &c, err) : 0;
}

/* ---- nftables ------------------------------------------------------------------ */

/* "ip saddr|daddr & mask == net" */
static void match_addr(struct nl_msg *rule, bool dst, const struct nat_cfg *c)
{
	uint32_t mask = htonl(c->mask), zero = 0, net = htonl(c->net);
	xn_nft_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, dst ? 16 : 12, 4);
	xn_nft_bitwise(rule, &mask, &zero, 4);
	xn_nft_cmp(rule, NFT_CMP_EQ, &net, 4);
}

/* "iifname|oifname ==|!= name" */
static void match_ifname(struct nl_msg *rule, int key, bool equal, const char *name)
{
	char padded[IFNAMSIZ] = {0};
	strncpy(padded, name, sizeof(padded) - 1);
	xn_nft_meta(rule, key);
	xn_nft_cmp(rule, equal ? NFT_CMP_EQ : NFT_CMP_NEQ, padded, sizeof(padded));
}

/* "ct state established,related" */
static void match_reply(struct nl_msg *rule)
{
	uint32_t bits = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0;
	xn_nft_ct(rule, NFT_CT_STATE);
	xn_nft_bitwise(rule, &bits, &zero, 4);
	xn_nft_cmp(rule, NFT_CMP_NEQ, &zero, 4);
}

static void masquerade(struct nl_msg *rule)
{
	xn_nft_expr_end(rule, xn_nft_expr(rule, "masq", NULL), NULL);
}

enum rule { RULE_MASQ, RULE_OUT, RULE_BACK };

static void rule_add(struct xn_nft_batch *b, const char *chain, enum rule r, const char *bridge,
		     const struct nat_cfg *c)
{
	struct nl_msg *rule = xn_nft_rule(b, NAT_TABLE, chain);
	switch (r) {
	case RULE_MASQ: /* ip saddr <net> oifname != <bridge> masquerade */
		match_addr(rule, false, c);
		match_ifname(rule, NFT_META_OIFNAME, false, bridge);
		masquerade(rule);
		break;
	case RULE_OUT: /* iifname <bridge> ip saddr <net> accept */
		match_ifname(rule, NFT_META_IIFNAME, true, bridge);
		match_addr(rule, false, c);
		xn_nft_verdict(rule, NF_ACCEPT);
		break;
	case RULE_BACK: /* oifname <bridge> ip daddr <net> ct state established,related accept */
		match_ifname(rule, NFT_META_OIFNAME, true, bridge);
		match_addr(rule, true, c);
		match_reply(rule);
		xn_nft_verdict(rule, NF_ACCEPT);
		break;
	}
	xn_nft_rule_end(b, rule);
}

/* A transaction that starts by making the table and the bridge's two
 * chains if missing (an existing chain with the same hook is left as it
 * is); their names in post and fwd. */
static void chains_begin(struct xn_nft_batch *b, const char *bridge, char post[32], char fwd[32])
{
	static const struct xn_nft_hook post_hook = {"nat", NF_INET_POST_ROUTING, 100, NULL};
	static const struct xn_nft_hook fwd_hook = {"filter", NF_INET_FORWARD, 0, NULL};
	snprintf(post, 32, "post-%s", bridge);
	snprintf(fwd, 32, "fwd-%s", bridge);
	xn_nft_begin(b, NFPROTO_IPV4);
	xn_nft_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, NAT_TABLE);
	xn_nft_chain(b, NAT_TABLE, post, &post_hook);
	xn_nft_chain(b, NAT_TABLE, fwd, &fwd_hook);
}

/* The bridge's two chains, made or remade with their rules, in one
 * transaction. */
static int nft_up(const char *bridge, const struct nat_cfg *c, xn_error **err)
{
	char post[32], fwd[32];
	struct xn_nft_batch b;
	chains_begin(&b, bridge, post, fwd);
	xn_nft_flush(&b, NAT_TABLE, post);
	xn_nft_flush(&b, NAT_TABLE, fwd);
	rule_add(&b, post, RULE_MASQ, bridge, c);
	rule_add(&b, fwd, RULE_OUT, bridge, c);
	rule_add(&b, fwd, RULE_BACK, bridge, c);
	int rc = xn_nft_commit(&b);
	if (rc)
		return xn_fail_internal(err, "nftables: cannot add the NAT rules of %s: %s", bridge,
					xn_nft_strerror(rc));
	return 0;
}

/* The bridge's chains go; the table too once it holds no chain (other
 * networks', perhaps other daemons', stay). */
static int nft_down(const char *bridge, xn_error **err)
{
	char post[32], fwd[32];
	struct xn_nft_batch b;
	chains_begin(&b, bridge, post, fwd);
	xn_nft_chain(&b, NAT_TABLE, post, NULL);
	xn_nft_chain(&b, NAT_TABLE, fwd, NULL);
	int rc = xn_nft_commit(&b);
	if (rc)
		return xn_fail_internal(err, "nftables: cannot remove the NAT rules of %s: %s",
					bridge, xn_nft_strerror(rc));
	xn_nft_begin(&b, NFPROTO_IPV4);
	xn_nft_table(&b, NFT_MSG_DELTABLE, NLM_F_NONREC, NAT_TABLE);
	xn_nft_commit(&b); /* EBUSY while other chains are there */
	return 0;
}

/* ---- forwarding ------------------------------------------------------------- */

static int sysctl_set(const char *path, const char *value, xn_error **err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return xn_fail_internal(err, "cannot write '%s': %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

static int forwarding_on(const char *bridge, xn_error **err)
{
	char now[4] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/ip_forward", "re");
	if (f) {
		if (!fgets(now, sizeof(now), f))
			now[0] = '\0';
		fclose(f);
	}
	if (now[0] != '1') {
		xn_info("nat: turning IPv4 forwarding on (net.ipv4.ip_forward) for %s", bridge);
		if (sysctl_set("/proc/sys/net/ipv4/ip_forward", "1", err) < 0)
			return -1;
	}
	XN_AUTOFREE char *path = xn_asprintf("/proc/sys/net/ipv4/conf/%s/forwarding", bridge);
	return sysctl_set(path, "1", err);
}

/* ---- dnsmasq ------------------------------------------------------------------ */

static char *pid_path(xn_host *h, const char *bridge)
{
	return xn_asprintf("%s/dnsmasq-%s.pid", h->run_dir, bridge);
}

static char *lease_path(xn_host *h, const char *bridge)
{
	return xn_asprintf("%s/dnsmasq-%s.leases", h->data_dir, bridge);
}

/* The command line of bridge's dnsmasq, NULL-terminated (caller frees
 * each string and the array). */
static char **dnsmasq_argv(xn_host *h, const char *bridge, const struct nat_cfg *c)
{
	XN_AUTOFREE char *pid = pid_path(h, bridge), *leases = lease_path(h, bridge);
	char *v[] = {
		xn_strdup("dnsmasq"),
		xn_strdup("--conf-file=/dev/null"),
		xn_asprintf("--pid-file=%s", pid),
		xn_strdup("--bind-interfaces"),
		xn_asprintf("--interface=%s", bridge),
		xn_strdup("--except-interface=lo"),
		xn_asprintf("--listen-address=%.*s", (int)strcspn(c->gw_cidr, "/"), c->gw_cidr),
		xn_asprintf("--dhcp-range=%s,%s,%s,1h", c->begin_s, c->end_s, c->mask_s),
		xn_asprintf("--dhcp-leasefile=%s", leases),
		xn_strdup("--dhcp-authoritative"),
		xn_strdup("--dhcp-no-override"),
		NULL,
	};
	char **argv = xn_calloc(sizeof(v) / sizeof(v[0]), sizeof(char *));
	memcpy(argv, v, sizeof(v));
	return argv;
}

static void argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* The pids of every dnsmasq whose command line names pidfile; in *same,
 * the one whose command line is exactly want (if want and any). */
static size_t dnsmasq_pids(const char *pidfile, char **want, pid_t *pids, size_t max,
			   pid_t *same)
{
	XN_AUTOFREE char *needle = xn_asprintf("--pid-file=%s", pidfile);
	size_t n = 0;
	*same = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d)) && n < max;) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		XN_AUTOFREE char *path = xn_asprintf("/proc/%d/cmdline", (int)pid);
		size_t len = 0;
		XN_AUTOFREE char *cmd = xn_read_file(path, &len, NULL);
		if (!cmd || !len || !strstr(cmd, "dnsmasq"))
			continue;
		bool ours = false, exact = want != NULL;
		size_t i = 0;
		for (const char *a = cmd; a < cmd + len; a += strlen(a) + 1, i++) {
			ours |= strcmp(a, needle) == 0;
			if (exact && (!want[i] || strcmp(want[i], a) != 0))
				exact = false;
		}
		if (!ours)
			continue;
		pids[n++] = pid;
		if (exact && !want[i] && !*same)
			*same = pid;
	}
	closedir(d);
	return n;
}

/* Stop pid (SIGTERM, then SIGKILL after 2 s); dnsmasq exits at once. */
static void stop_pid(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		XN_AUTOFREE char *path = xn_asprintf("/proc/%d/cmdline", (int)pid);
		size_t len = 0;
		XN_AUTOFREE char *cmd = xn_read_file(path, &len, NULL);
		if (!cmd || !len) /* gone, or a zombie of its parent */
			return;
		if (i == 199)
			kill(pid, SIGKILL);
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}

/* Bridges whose dnsmasq is being started (its parent has not exited). */
static json_t *starting;

static void on_dnsmasq_started(void *ud, int status, const char *output)
{
	char *bridge = ud;
	json_object_del(starting, bridge);
	if (status != 0)
		xn_warn("nat: dnsmasq for %s failed (status %d): %s", bridge, status, output);
	else
		xn_info("nat: dnsmasq serving DHCP on %s", bridge);
	free(bridge);
}

static int dnsmasq_ensure(xn_host *h, const char *bridge, const struct nat_cfg *c,
			  xn_error **err)
{
	if (!starting)
		starting = json_object();
	if (json_object_get(starting, bridge))
		return 0;
	if (xn_mkdir_p(h->run_dir, 0700, err) < 0)
		return -1;
	char **argv = dnsmasq_argv(h, bridge, c);
	XN_AUTOFREE char *pidfile = pid_path(h, bridge);
	pid_t pids[16], same;
	size_t n = dnsmasq_pids(pidfile, argv, pids, 16, &same);
	for (size_t i = 0; i < n; i++)
		if (pids[i] != same) {
			xn_info("nat: stopping a stale dnsmasq (pid %d) for %s", (int)pids[i], bridge);
			stop_pid(pids[i]);
		}
	if (same) {
		argv_free(argv);
		return 0;
	}
	int rc = xn_run(h->loop, argv, on_dnsmasq_started, xn_strdup(bridge), err);
	if (rc == 0)
		json_object_set_new(starting, bridge, json_true());
	argv_free(argv);
	return rc;
}

static void dnsmasq_stop(xn_host *h, const char *bridge)
{
	XN_AUTOFREE char *pidfile = pid_path(h, bridge), *leases = lease_path(h, bridge);
	pid_t pids[16], same;
	size_t n = dnsmasq_pids(pidfile, NULL, pids, 16, &same);
	for (size_t i = 0; i < n; i++)
		stop_pid(pids[i]);
	unlink(pidfile);
	unlink(leases);
}

/* ---- up and down ------------------------------------------------------------- */

int xn_nat_up(xn_host *h, const char *net, xn_error **err)
{
	json_t *oc = xn_db_field(h->db, net, "other_config");
	if (!xn_nat_is(oc))
		return 0;
	const char *bridge = xn_db_str(h->db, net, "bridge");
	struct nat_cfg c;
	if (nat_cfg(oc, &c, err) < 0 || xn_nl_addr_add(bridge, c.gw_cidr, err) < 0 ||
	    forwarding_on(bridge, err) < 0 || nft_up(bridge, &c, err) < 0)
		return -1;
	return dnsmasq_ensure(h, bridge, &c, err);
}

void xn_nat_bridge_made(xn_host *h, const char *bridge)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("network")), k, v) {
		if (!xn_streq(json_string_value(json_object_get(v, "bridge")), bridge))
			continue;
		xn_error *err = NULL;
		if (xn_nl_link_exists(bridge) && xn_nat_up(h, k, &err) < 0) {
			xn_warn("nat: network %s: %s", bridge, err->message);
			xn_error_free(err);
		}
		return;
	}
}

json_t *xn_nat_config(xn_host *h, const char *net)
{
	json_t *oc = xn_db_field(h->db, net, "other_config");
	return xn_nat_is(oc) ? json_deep_copy(oc) : NULL;
}

void xn_nat_down(xn_host *h, const char *bridge, json_t *config)
{
	if (!config)
		return;
	dnsmasq_stop(h, bridge);
	xn_error *err = NULL;
	struct nat_cfg c;
	if (nat_cfg(config, &c, NULL) == 0 && xn_nl_link_exists(bridge) &&
	    xn_nl_addr_del(bridge, c.gw_cidr, &err) < 0) {
		xn_warn("nat: %s", err->message);
		xn_error_free(err);
		err = NULL;
	}
	if (nft_down(bridge, &err) < 0) {
		xn_warn("nat: %s", err->message);
		xn_error_free(err);
	}
	json_decref(config);
}

/* ---- daemon start ------------------------------------------------------------ */

/* Whether the /24 at net overlaps a route of the host's main table or a
 * NAT network's subnet. */
static bool subnet_taken(xn_host *h, uint32_t net, uint32_t mask)
{
	FILE *f = fopen("/proc/net/route", "re");
	char line[256];
	bool taken = false;
	while (f && fgets(line, sizeof(line), f) && !taken) {
		char dev[32];
		unsigned dst, gw, flags, refcnt, use, metric, m;
		if (sscanf(line, "%31s %x %x %x %u %u %u %x", dev, &dst, &gw, &flags, &refcnt, &use,
			   &metric, &m) != 8 || m == 0)
			continue;
		uint32_t rdst = ntohl(dst), rmask = ntohl(m), both = rmask & mask;
		taken = (rdst & both) == (net & both);
	}
	if (f)
		fclose(f);
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("network")), k, v) {
		struct nat_cfg c;
		json_t *oc = json_object_get(v, "other_config");
		if (xn_nat_is(oc) && nat_cfg(oc, &c, NULL) == 0 &&
		    (c.net & c.mask & mask) == (net & c.mask & mask))
			taken = true;
	}
	return taken;
}

/* libvirt's "default" network, once: on the first start of a data
 * directory that has no network of its own (PIFs' networks aside). */
static int default_network(xn_host *h, xn_error **err)
{
	XN_AUTOFREE char *marker = xn_asprintf("%s/nat-default-made", h->data_dir);
	if (xn_path_exists(marker))
		return 0;
	bool any = false;
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("network")), k, v)
		any |= json_array_size(json_object_get(v, "PIFs")) == 0;
	if (!any) {
		int x = 254;
		while (x > 0 && subnet_taken(h, (192u << 24) | (168u << 16) | ((uint32_t)x << 8),
					     0xffffff00u))
			x--;
		if (x == 0)
			return xn_fail_internal(err, "nat: no free 192.168.x.0/24 for the default network");
		XN_AUTOFREE char *bridge = xn_net_free_bridge_name(h);
		XN_AUTOFREE char *b = xn_asprintf("192.168.%d.2", x);
		XN_AUTOFREE char *e = xn_asprintf("192.168.%d.254", x);
		json_t *rec = json_pack(
			"{s:s, s:s, s:s, s:b, s:i, s:{s:s, s:s, s:s, s:s}}", "name_label",
			"Pool-wide network", "name_description",
			"NAT: guests get addresses by DHCP and reach out through this host",
			"bridge", bridge, "managed", 1, "MTU", 1500, "other_config", "ip_begin", b,
			"ip_end", e, "netmask", "255.255.255.0", "xenia-nat", "true");
		xn_changes *cs = xn_changes_new(h->db);
		xn_changes_add(cs, xn_model_class("network"), NULL, rec);
		if (xn_db_commit(h->db, cs, err) < 0)
			return -1;
		xn_info("nat: made the default NAT network (%s, 192.168.%d.0/24)", bridge, x);
	}
	return xn_write_file_atomic(marker, "", 0, 0600, err);
}

int xn_nat_init(xn_host *h, xn_error **err)
{
	if (default_network(h, err) < 0)
		return -1;
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("network")), k, v) {
		if (!xn_nat_is(json_object_get(v, "other_config")))
			continue;
		const char *bridge = json_string_value(json_object_get(v, "bridge"));
		bool attached = false;
		size_t i;
		json_t *vif;
		json_array_foreach(json_object_get(v, "VIFs"), i, vif)
			attached |= xn_db_bool(h->db, json_string_value(vif), "currently_attached");
		if (!bridge || (!xn_nl_link_exists(bridge) && !attached))
			continue;
		xn_error *e = NULL;
		if ((!xn_nl_link_exists(bridge) && xn_nl_bridge_add(bridge, &e) < 0) ||
		    xn_nat_up(h, k, &e) < 0) {
			xn_warn("nat: network %s: %s", bridge, e->message);
			xn_error_free(e);
		}
	}
	return 0;
}
