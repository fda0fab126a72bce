/* netlink_int.h: what netlink.c shares with its neighbours in src/net
 * (ratelimit.c, nft.c): cleanup wrappers for libnl objects, aborting on
 * a message that cannot be built, and netlink.c's error, socket and link
 * helpers. Not for use outside src/net. */
#ifndef XN_NET_NETLINK_INT_H
#define XN_NET_NETLINK_INT_H

#include <stdbool.h>
#include <stdlib.h>

#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include "util/err.h"
#include "util/util.h"

static inline void xn_nl_sock_freep(struct nl_sock **p) { if (*p) nl_socket_free(*p); }
static inline void xn_nl_cache_freep(struct nl_cache **p) { if (*p) nl_cache_free(*p); }
static inline void xn_nl_link_putp(struct rtnl_link **p) { if (*p) rtnl_link_put(*p); }
static inline void xn_nl_msg_freep(struct nl_msg **p) { if (*p) nlmsg_free(*p); }
static inline void xn_nl_cb_putp(struct nl_cb **p) { if (*p) nl_cb_put(*p); }
#define AUTO_SOCK __attribute__((cleanup(xn_nl_sock_freep))) struct nl_sock
#define AUTO_CACHE __attribute__((cleanup(xn_nl_cache_freep))) struct nl_cache
#define AUTO_LINK __attribute__((cleanup(xn_nl_link_putp))) struct rtnl_link
#define AUTO_MSG __attribute__((cleanup(xn_nl_msg_freep))) struct nl_msg
#define AUTO_CB __attribute__((cleanup(xn_nl_cb_putp))) struct nl_cb

/* Building a message fails only when memory runs out or the message
 * outgrows its page (ours are a few hundred bytes): abort, as allocation
 * failure does everywhere in Xenia. */
static inline void must(int rc)
{
	if (rc < 0)
		abort();
}

static inline void *must_ptr(void *p)
{
	if (!p)
		abort();
	return p;
}

/* INTERNAL_ERROR "netlink: <what> <name>: <reason>", the reason from fmt
 * or from libnl's error nlerr. Return -1. */
int xn_nl_fail(xn_error **err, const char *what, const char *name, const char *fmt, ...)
	XN_PRINTF(4, 5);
int xn_nl_fail_nl(xn_error **err, const char *what, const char *name, int nlerr);
/* Whether libnl's nlerr says the object (link, address, qdisc) is gone. */
bool xn_nl_missing(int nlerr);

/* A NETLINK_ROUTE socket in the calling thread's namespace for a call on
 * interface name, checked first as the kernel would (caller frees), or
 * NULL with err. */
struct nl_sock *xn_nl_open(const char *what, const char *name, xn_error **err);
/* name's link as the kernel has it now, in *l (caller puts; NULL when
 * there is none): 0, or -1 with err when the kernel could not say. */
int xn_nl_link_find(struct nl_sock *sk, const char *what, const char *name, struct rtnl_link **l,
		    xn_error **err);

#endif
