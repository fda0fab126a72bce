/* ratelimit.c: a device's rate limit (xn_nl_rate_limit in netlink.h):
 * its egress through tc over rtnetlink (libnl-route-3), its ingress
 * through nftables (nft.h), and the removal of ingress limits whose
 * device has gone.
 *
 * Egress: a root tbf qdisc at the rate, with a bucket of a tenth of a
 * second's traffic and at least 64 KiB (so that any frame fits whatever
 * the MTU; GSO packets larger than the bucket are split by tbf), and a
 * queue of 50 ms at the rate on top of the bucket; what does not fit is
 * dropped. It goes with its device.
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
 * ruleset) takes these tables with it.
 *
 * nftables keeps such a table when its device goes (and recent kernels
 * attach its chain again to the next device of the same name), so the
 * table is removed when a VM's tap goes (xn_nl_rate_limit_drop), when a
 * tap is made under a name a gone device left (xn_nl_tap_open), and at
 * daemon start for every device that is not there
 * (xn_nl_rate_limit_sweep). */
#include "net/netlink.h"

#include <arpa/inet.h>
#include <endian.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/pkt_sched.h>

#include <netlink/attr.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>

#include "net/netlink_int.h"
#include "net/nft.h"

#define RL_TABLE "xenia-rl-"
#define RL_LATENCY_US 50000
#define RL_MIN_BUCKET 65536
#define RL_MAX_KBPS ((uint64_t)INT32_MAX / 125) /* libnl's tbf rate is an int of bytes/s */

static void qdisc_putp(struct rtnl_qdisc **p) { if (*p) rtnl_qdisc_put(*p); }
#define AUTO_QDISC __attribute__((cleanup(qdisc_putp))) struct rtnl_qdisc

/* ---- ingress ------------------------------------------------------------- */

/* "limit rate over <rate> bytes/second burst 64 KiB drop" */
static void rule_add(struct xn_nft_batch *b, const char *table, uint64_t bytes_per_s)
{
	struct nl_msg *rule = xn_nft_rule(b, table, "ingress");
	struct nlattr *d, *e = xn_nft_expr(rule, "limit", &d);
	must(nla_put_u64(rule, NFTA_LIMIT_RATE, htobe64(bytes_per_s)));
	must(nla_put_u64(rule, NFTA_LIMIT_UNIT, htobe64(1))); /* per second */
	must(nla_put_u32(rule, NFTA_LIMIT_BURST, htonl(RL_MIN_BUCKET)));
	must(nla_put_u32(rule, NFTA_LIMIT_TYPE, htonl(NFT_LIMIT_PKT_BYTES)));
	must(nla_put_u32(rule, NFTA_LIMIT_FLAGS, htonl(NFT_LIMIT_F_INV))); /* matches when over */
	xn_nft_expr_end(rule, e, d);
	xn_nft_verdict(rule, NF_DROP);
	xn_nft_rule_end(b, rule);
}

/* Make (bytes_per_s > 0) or remove name's ingress limit, in one nftables
 * transaction: create the table (if missing), delete it with all it
 * holds, and for a limit create it again with its chain and rule. */
static int ingress_set(const char *name, uint64_t bytes_per_s, xn_error **err)
{
	XN_AUTOFREE char *table = xn_asprintf(RL_TABLE "%s", name);
	struct xn_nft_batch b;
	xn_nft_begin(&b, NFPROTO_NETDEV);
	xn_nft_table(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE, table);
	xn_nft_table(&b, NFT_MSG_DELTABLE, 0, table);
	if (bytes_per_s) {
		const struct xn_nft_hook hook = {"filter", NF_NETDEV_INGRESS, 0, name};
		xn_nft_table(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE, table);
		xn_nft_chain(&b, table, "ingress", &hook);
		rule_add(&b, table, bytes_per_s);
	}
	int rc = xn_nft_commit(&b);
	if (rc < 0)
		return xn_nl_fail_nl(err, "rate limit", name, rc);
	if (rc > 0)
		return xn_nl_fail(err, "rate limit", name, "nftables refused the ingress limit: %s",
				  strerror(rc));
	return 0;
}

int xn_nl_rate_limit_drop(const char *name, xn_error **err)
{
	return ingress_set(name, 0, err);
}

/* Checks every netdev table that is ours and names no link of this
 * namespace. A table another daemon on the host limits a new tap with
 * in that instant could go too: this runs at daemon start only. */
int xn_nl_rate_limit_sweep(xn_error **err)
{
	json_t *names;
	int rc = xn_nft_tables(NFPROTO_NETDEV, &names);
	if (rc)
		return xn_fail_internal(err, "nftables: cannot list the netdev tables: %s",
					xn_nft_strerror(rc));
	int removed = 0;
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v) {
		const char *t = json_string_value(v);
		if (strncmp(t, RL_TABLE, strlen(RL_TABLE)) || xn_nl_link_exists(t + strlen(RL_TABLE)))
			continue;
		if (xn_nl_rate_limit_drop(t + strlen(RL_TABLE), err) < 0) {
			json_decref(names);
			return -1;
		}
		removed++;
	}
	json_decref(names);
	return removed;
}

/* ---- egress -------------------------------------------------------------- */

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
	return rc < 0 && !xn_nl_missing(rc) ? rc : 0;
}

/* ---- both ---------------------------------------------------------------- */

int xn_nl_rate_limit(const char *name, uint64_t kbps, xn_error **err)
{
	const char *what = "rate limit";
	AUTO_SOCK *sk = xn_nl_open(what, name, err);
	if (!sk)
		return -1;
	if (kbps > RL_MAX_KBPS)
		return xn_nl_fail(err, what, name, "%llu kbps is too high (at most %llu)",
				  (unsigned long long)kbps, (unsigned long long)RL_MAX_KBPS);
	AUTO_LINK *l = NULL;
	if (xn_nl_link_find(sk, what, name, &l, err) < 0)
		return -1;
	int rc;
	if (!kbps) {
		if (l && (rc = tbf_remove(sk, rtnl_link_get_ifindex(l))) < 0)
			return xn_nl_fail_nl(err, what, name, rc);
		return ingress_set(name, 0, err);
	}
	if (!l)
		return xn_nl_fail(err, what, name, "no such device");
	uint64_t bytes_per_s = kbps * 1000 / 8;
	if ((rc = tbf_set(sk, rtnl_link_get_ifindex(l), bytes_per_s)) < 0)
		return xn_nl_fail_nl(err, what, name, rc);
	if (ingress_set(name, bytes_per_s, err) < 0) {
		tbf_remove(sk, rtnl_link_get_ifindex(l)); /* all or nothing */
		return -1;
	}
	return 0;
}
