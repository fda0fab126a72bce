/* nft.h: nftables over nfnetlink, for src/net only (ratelimit.c's
 * ingress policers, nat.c's masquerade and forward chains). The daemon
 * never runs `nft`.
 *
 * nftables takes changes only as a transaction: messages back to back in
 * one datagram between BATCH_BEGIN and BATCH_END, applied all or
 * nothing. A struct xn_nft_batch collects them (built with libnl's core,
 * every one asking for an ack) and xn_nft_commit() sends it on a socket
 * of its own, in the calling thread's network namespace, and waits for
 * the kernel's verdict. Building a message aborts only when memory runs
 * out (as everywhere in Xenia). */
#ifndef XN_NET_NFT_H
#define XN_NET_NFT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <netlink/msg.h>

#include "util/util.h"

struct xn_nft_batch {
	int family;            /* NFPROTO_* of its messages */
	xn_buf buf;            /* the messages so far */
	uint32_t seq;          /* the last one's sequence number */
	struct nlattr *exprs;  /* the open rule's expression list */
};

/* A transaction on family's tables, started (BATCH_BEGIN); to send with
 * xn_nft_commit, which frees it. */
void xn_nft_begin(struct xn_nft_batch *b, int family);
/* Send b (freed) as one transaction and wait for the kernel's answers:
 * 0 when it applied; a positive errno when the kernel refused it (then
 * nothing of it applied: EOPNOTSUPP no nf_tables, EAFNOSUPPORT no such
 * family, ENOENT a missing object or expression); a negative libnl
 * error when it could not be sent or heard. */
int xn_nft_commit(struct xn_nft_batch *b);
/* xn_nft_commit's or xn_nft_tables' failure as text (static). */
const char *xn_nft_strerror(int rc);

/* ---- objects: each appends one message to b ---------------------------- */

/* NFT_MSG_NEWTABLE or NFT_MSG_DELTABLE of table, with flags (NLM_F_CREATE
 * makes a new table a no-op for an existing one; NLM_F_NONREC deletes
 * only an empty table). */
void xn_nft_table(struct xn_nft_batch *b, int type, int flags, const char *table);

/* A base chain's hook: type "filter" or "nat", hook number (NF_INET_* or
 * NF_NETDEV_INGRESS), priority, and for the netdev family its device. */
struct xn_nft_hook {
	const char *type;
	int num;
	int prio;
	const char *dev;
};
/* A base chain made if missing (hook given, policy accept; an existing
 * one is left as it is), or removed with its rules (hook NULL). */
void xn_nft_chain(struct xn_nft_batch *b, const char *table, const char *chain,
		  const struct xn_nft_hook *hook);
/* Every rule of chain goes. */
void xn_nft_flush(struct xn_nft_batch *b, const char *table, const char *chain);

/* A rule appended to chain: its expressions go into the returned message
 * (owned by b) in order, then xn_nft_rule_end appends it to b. */
struct nl_msg *xn_nft_rule(struct xn_nft_batch *b, const char *table, const char *chain);
void xn_nft_rule_end(struct xn_nft_batch *b, struct nl_msg *rule);

/* ---- expressions of an open rule; the loads and matches use register 1 */

/* An expression "name" whose attributes follow (none for masq); returns
 * its element, closed with xn_nft_expr_end(rule, elem, *data). */
struct nlattr *xn_nft_expr(struct nl_msg *rule, const char *name, struct nlattr **data);
void xn_nft_expr_end(struct nl_msg *rule, struct nlattr *elem, struct nlattr *data);

/* Load len bytes at offset of the packet's header base (NFT_PAYLOAD_*). */
void xn_nft_payload(struct nl_msg *rule, int base, int offset, int len);
/* Load a meta key (NFT_META_*) or a conntrack key (NFT_CT_*). */
void xn_nft_meta(struct nl_msg *rule, int key);
void xn_nft_ct(struct nl_msg *rule, int key);
/* register = (register & mask) ^ xor, len bytes each. */
void xn_nft_bitwise(struct nl_msg *rule, const void *mask, const void *xor, size_t len);
/* Go on only if register <op> data (NFT_CMP_EQ, NFT_CMP_NEQ). */
void xn_nft_cmp(struct nl_msg *rule, int op, const void *data, size_t len);
/* The verdict NF_ACCEPT or NF_DROP. */
void xn_nft_verdict(struct nl_msg *rule, int code);

/* ---- listing ----------------------------------------------------------- */

/* The names of family's tables, as a JSON array of strings (new
 * reference, in *names): 0, or an xn_nft_commit-style failure. */
int xn_nft_tables(int family, json_t **names);

#endif
