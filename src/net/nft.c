/* nft.c: nftables transactions and listings over nfnetlink (nft.h),
 * messages built with libnl's core.
 *
 * Every message is struct nfgenmsg then attributes; a batch delimiter is
 * the same header on a message type of nfnetlink itself, naming the
 * nftables subsystem in res_id. The kernel answers each message flagged
 * NLM_F_ACK, in order, once the whole batch is done; a batch it refuses
 * as a whole (no nf_tables, no permission, a failed commit) gets one
 * error for its first message. */
#include "net/nft.h"

#include <arpa/inet.h>
#include <endian.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <netlink/attr.h>

#include "net/netlink_int.h"

/* A message of family for the nftables subsystem, or a batch delimiter
 * (type NFNL_MSG_BATCH_*). */
static struct nl_msg *nft_msg(int family, int type, int flags)
{
	bool delim = type == NFNL_MSG_BATCH_BEGIN || type == NFNL_MSG_BATCH_END;
	struct nfgenmsg g = {
		.nfgen_family = delim ? AF_UNSPEC : family,
		.version = NFNETLINK_V0,
		.res_id = htons(delim ? NFNL_SUBSYS_NFTABLES : 0),
	};
	int t = delim ? type : (NFNL_SUBSYS_NFTABLES << 8) | type;
	struct nl_msg *msg = must_ptr(nlmsg_alloc_simple(t, NLM_F_REQUEST | flags));
	must(nlmsg_append(msg, &g, sizeof(g), NLMSG_ALIGNTO));
	return msg;
}

/* Appends msg (freed) to b. */
static void batch_add(struct xn_nft_batch *b, struct nl_msg *msg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	h->nlmsg_seq = ++b->seq;
	xn_buf_append(&b->buf, h, NLMSG_ALIGN(h->nlmsg_len));
	nlmsg_free(msg);
}

void xn_nft_begin(struct xn_nft_batch *b, int family)
{
	*b = (struct xn_nft_batch){.family = family};
	batch_add(b, nft_msg(family, NFNL_MSG_BATCH_BEGIN, 0));
}

/* Waiting for the answer to the batch's last acked message, or for an
 * error about it or about the first (the batch as a whole). */
struct replies {
	uint32_t first, last;
	int error; /* the first -errno */
	bool done;
};

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct replies *r = arg;
	if (nlmsg_hdr(msg)->nlmsg_seq != r->last)
		return NL_OK;
	r->done = true;
	return NL_STOP;
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct replies *r = arg;
	if (!r->error)
		r->error = e->error;
	if (e->msg.nlmsg_seq != r->last && e->msg.nlmsg_seq != r->first)
		return NL_OK;
	r->done = true;
	return NL_STOP;
}

static int no_seq_check(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

int xn_nft_commit(struct xn_nft_batch *b)
{
	struct replies r = {.first = 1, .last = b->seq};
	batch_add(b, nft_msg(b->family, NFNL_MSG_BATCH_END, 0));
	AUTO_SOCK *sk = must_ptr(nl_socket_alloc());
	int rc = nl_connect(sk, NETLINK_NETFILTER);
	if (rc == 0)
		rc = nl_sendto(sk, b->buf.data, b->buf.len);
	xn_buf_reset(&b->buf);
	if (rc < 0)
		return rc;
	AUTO_CB *cb = must_ptr(nl_cb_alloc(NL_CB_DEFAULT));
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, &r);
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, no_seq_check, NULL);
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &r);
	while (!r.done)
		if ((rc = nl_recvmsgs(sk, cb)) < 0 && !r.done)
			return rc;
	return -r.error;
}

const char *xn_nft_strerror(int rc)
{
	return rc > 0 ? strerror(rc) : nl_geterror(rc);
}

/* ---- objects ------------------------------------------------------------ */

void xn_nft_table(struct xn_nft_batch *b, int type, int flags, const char *table)
{
	struct nl_msg *msg = nft_msg(b->family, type, NLM_F_ACK | flags);
	must(nla_put_string(msg, NFTA_TABLE_NAME, table));
	batch_add(b, msg);
}

void xn_nft_chain(struct xn_nft_batch *b, const char *table, const char *chain,
		  const struct xn_nft_hook *hook)
{
	int type = hook ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN;
	struct nl_msg *msg = nft_msg(b->family, type, NLM_F_ACK | (hook ? NLM_F_CREATE : 0));
	must(nla_put_string(msg, NFTA_CHAIN_TABLE, table));
	must(nla_put_string(msg, NFTA_CHAIN_NAME, chain));
	if (hook) {
		must(nla_put_string(msg, NFTA_CHAIN_TYPE, hook->type));
		must(nla_put_u32(msg, NFTA_CHAIN_POLICY, htonl(NF_ACCEPT)));
		struct nlattr *h = must_ptr(nla_nest_start(msg, NFTA_CHAIN_HOOK));
		must(nla_put_u32(msg, NFTA_HOOK_HOOKNUM, htonl((uint32_t)hook->num)));
		must(nla_put_u32(msg, NFTA_HOOK_PRIORITY, htonl((uint32_t)hook->prio)));
		if (hook->dev)
			must(nla_put_string(msg, NFTA_HOOK_DEV, hook->dev));
		nla_nest_end(msg, h);
	}
	batch_add(b, msg);
}

/* A DELRULE naming no rule flushes the chain. */
void xn_nft_flush(struct xn_nft_batch *b, const char *table, const char *chain)
{
	struct nl_msg *msg = nft_msg(b->family, NFT_MSG_DELRULE, NLM_F_ACK);
	must(nla_put_string(msg, NFTA_RULE_TABLE, table));
	must(nla_put_string(msg, NFTA_RULE_CHAIN, chain));
	batch_add(b, msg);
}

struct nl_msg *xn_nft_rule(struct xn_nft_batch *b, const char *table, const char *chain)
{
	struct nl_msg *msg =
		nft_msg(b->family, NFT_MSG_NEWRULE, NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND);
	must(nla_put_string(msg, NFTA_RULE_TABLE, table));
	must(nla_put_string(msg, NFTA_RULE_CHAIN, chain));
	b->exprs = must_ptr(nla_nest_start(msg, NFTA_RULE_EXPRESSIONS));
	return msg;
}

void xn_nft_rule_end(struct xn_nft_batch *b, struct nl_msg *rule)
{
	nla_nest_end(rule, b->exprs);
	b->exprs = NULL;
	batch_add(b, rule);
}

/* ---- expressions -------------------------------------------------------- */

struct nlattr *xn_nft_expr(struct nl_msg *rule, const char *name, struct nlattr **data)
{
	struct nlattr *e = must_ptr(nla_nest_start(rule, NFTA_LIST_ELEM));
	must(nla_put_string(rule, NFTA_EXPR_NAME, name));
	if (data)
		*data = must_ptr(nla_nest_start(rule, NFTA_EXPR_DATA));
	return e;
}

void xn_nft_expr_end(struct nl_msg *rule, struct nlattr *elem, struct nlattr *data)
{
	if (data)
		nla_nest_end(rule, data);
	nla_nest_end(rule, elem);
}

static void put_u32(struct nl_msg *rule, int type, uint32_t v)
{
	must(nla_put_u32(rule, type, htonl(v)));
}

/* A NFTA_DATA_VALUE nested in attribute type. */
static void put_data(struct nl_msg *rule, int type, const void *p, size_t len)
{
	struct nlattr *n = must_ptr(nla_nest_start(rule, type));
	must(nla_put(rule, NFTA_DATA_VALUE, (int)len, p));
	nla_nest_end(rule, n);
}

void xn_nft_payload(struct nl_msg *rule, int base, int offset, int len)
{
	struct nlattr *d, *e = xn_nft_expr(rule, "payload", &d);
	put_u32(rule, NFTA_PAYLOAD_DREG, NFT_REG_1);
	put_u32(rule, NFTA_PAYLOAD_BASE, (uint32_t)base);
	put_u32(rule, NFTA_PAYLOAD_OFFSET, (uint32_t)offset);
	put_u32(rule, NFTA_PAYLOAD_LEN, (uint32_t)len);
	xn_nft_expr_end(rule, e, d);
}

void xn_nft_meta(struct nl_msg *rule, int key)
{
	struct nlattr *d, *e = xn_nft_expr(rule, "meta", &d);
	put_u32(rule, NFTA_META_KEY, (uint32_t)key);
	put_u32(rule, NFTA_META_DREG, NFT_REG_1);
	xn_nft_expr_end(rule, e, d);
}

void xn_nft_ct(struct nl_msg *rule, int key)
{
	struct nlattr *d, *e = xn_nft_expr(rule, "ct", &d);
	put_u32(rule, NFTA_CT_KEY, (uint32_t)key);
	put_u32(rule, NFTA_CT_DREG, NFT_REG_1);
	xn_nft_expr_end(rule, e, d);
}

void xn_nft_bitwise(struct nl_msg *rule, const void *mask, const void *xor, size_t len)
{
	struct nlattr *d, *e = xn_nft_expr(rule, "bitwise", &d);
	put_u32(rule, NFTA_BITWISE_SREG, NFT_REG_1);
	put_u32(rule, NFTA_BITWISE_DREG, NFT_REG_1);
	put_u32(rule, NFTA_BITWISE_LEN, (uint32_t)len);
	put_data(rule, NFTA_BITWISE_MASK, mask, len);
	put_data(rule, NFTA_BITWISE_XOR, xor, len);
	xn_nft_expr_end(rule, e, d);
}

void xn_nft_cmp(struct nl_msg *rule, int op, const void *data, size_t len)
{
	struct nlattr *d, *e = xn_nft_expr(rule, "cmp", &d);
	put_u32(rule, NFTA_CMP_SREG, NFT_REG_1);
	put_u32(rule, NFTA_CMP_OP, (uint32_t)op);
	put_data(rule, NFTA_CMP_DATA, data, len);
	xn_nft_expr_end(rule, e, d);
}

void xn_nft_verdict(struct nl_msg *rule, int code)
{
	struct nlattr *d, *e = xn_nft_expr(rule, "immediate", &d);
	put_u32(rule, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
	struct nlattr *data = must_ptr(nla_nest_start(rule, NFTA_IMMEDIATE_DATA));
	struct nlattr *v = must_ptr(nla_nest_start(rule, NFTA_DATA_VERDICT));
	put_u32(rule, NFTA_VERDICT_CODE, (uint32_t)code);
	nla_nest_end(rule, v);
	nla_nest_end(rule, data);
	xn_nft_expr_end(rule, e, d);
}

/* ---- listing ------------------------------------------------------------ */

static int on_table(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[NFTA_TABLE_MAX + 1];
	if (nlmsg_parse(nlmsg_hdr(msg), sizeof(struct nfgenmsg), tb, NFTA_TABLE_MAX, NULL) == 0 &&
	    tb[NFTA_TABLE_NAME])
		json_array_append_new(arg, json_string(nla_get_string(tb[NFTA_TABLE_NAME])));
	return NL_OK;
}

int xn_nft_tables(int family, json_t **names)
{
	*names = NULL;
	AUTO_SOCK *sk = must_ptr(nl_socket_alloc());
	int rc = nl_connect(sk, NETLINK_NETFILTER);
	AUTO_MSG *msg = nft_msg(family, NFT_MSG_GETTABLE, NLM_F_DUMP);
	if (rc == 0)
		rc = nl_send_auto(sk, msg);
	if (rc < 0)
		return rc;
	json_t *out = json_array();
	AUTO_CB *cb = must_ptr(nl_cb_alloc(NL_CB_DEFAULT));
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_table, out);
	if ((rc = nl_recvmsgs(sk, cb)) < 0) {
		json_decref(out);
		return rc;
	}
	*names = out;
	return 0;
}
