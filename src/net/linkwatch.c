/* linkwatch.c: tell the daemon when the host's links change (a NIC's
 * carrier comes or goes, a device appears or goes), from rtnetlink's
 * link notifications on the event loop.
 *
 * Notifications come in bursts (a VM start makes taps, a cable pull
 * changes several flags): the callback runs once per burst, 50 ms after
 * its last message, and reads what it needs afresh. A lost notification
 * (the socket's buffer overflowed) counts as a change. */
#include "net/net.h"

#include <linux/rtnetlink.h>

#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "util/log.h"

typedef struct linkwatch {
	xn_host *h;
	xn_linkwatch_fn fn;
	struct nl_sock *sk;
	uv_poll_t poll;
	uv_timer_t settle;
} linkwatch;

static void settled(uv_timer_t *t)
{
	linkwatch *w = t->data;
	w->fn(w->h);
}

static int on_msg(struct nl_msg *msg, void *arg)
{
	return NL_OK; /* what changed is read afresh when the burst settles */
}

static void readable(uv_poll_t *p, int status, int events)
{
	linkwatch *w = p->data;
	int rc;
	while ((rc = nl_recvmsgs_default(w->sk)) >= 0)
		;
	if (rc != -NLE_AGAIN && rc != -NLE_NOMEM)
		xn_debug("net: link watch: %s", nl_geterror(rc));
	uv_timer_start(&w->settle, settled, 50, 0);
}

int xn_linkwatch_start(xn_host *h, xn_linkwatch_fn fn, xn_error **err)
{
	linkwatch *w = xn_calloc(1, sizeof(*w));
	w->h = h;
	w->fn = fn;
	w->sk = nl_socket_alloc();
	if (!w->sk)
		abort();
	nl_socket_disable_seq_check(w->sk);
	nl_socket_modify_cb(w->sk, NL_CB_VALID, NL_CB_CUSTOM, on_msg, w);
	int rc = nl_connect(w->sk, NETLINK_ROUTE);
	if (rc == 0)
		rc = nl_socket_add_membership(w->sk, RTNLGRP_LINK);
	if (rc == 0)
		rc = nl_socket_set_nonblocking(w->sk);
	if (rc < 0) {
		nl_socket_free(w->sk);
		free(w);
		return xn_fail_internal(err, "net: link watch: %s", nl_geterror(rc));
	}
	uv_timer_init(h->loop, &w->settle);
	w->settle.data = w;
	uv_poll_init(h->loop, &w->poll, nl_socket_get_fd(w->sk));
	w->poll.data = w;
	uv_poll_start(&w->poll, UV_READABLE, readable);
	return 0; /* lives as long as the daemon */
}
