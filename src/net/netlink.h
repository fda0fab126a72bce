/* netlink.h: the host's network devices, over rtnetlink (libnl-route-3)
 * and, for taps, /dev/net/tun; their rate limits also over nftables
 * (ratelimit.c). The daemon never runs `ip`, `brctl`, `tc` or `nft`.
 *
 * Every call is synchronous: the kernel answers rtnetlink at once. Names
 * are kernel interface names (at most 15 characters). Calls that make
 * something that is already there, or remove something already gone,
 * succeed: callers reconcile by asking again. Errors are INTERNAL_ERROR
 * with "netlink: <what> <name>: <reason>". Calls act in the network
 * namespace of the calling thread (tests run them in a namespace of
 * their own). */
#ifndef XN_NET_NETLINK_H
#define XN_NET_NETLINK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/* ---- links ------------------------------------------------------------ */

/* Every link, as [{"name", "index", "mac" ("aa:bb:..", lowercase), "mtu",
 * "up" (admin state), "carrier", "kind" ("" for a physical NIC, else the
 * rtnetlink kind: "bridge", "vlan", "bond", "veth", "tun", ...), "master"
 * (the bridge or bond it is in, or null), "vlan_id" and "parent" (for a
 * VLAN)}] (new reference), NULL with err. */
json_t *xn_nl_links(xn_error **err);
bool xn_nl_link_exists(const char *name);
int xn_nl_link_set_up(const char *name, bool up, xn_error **err);
/* Put name in master (a bridge or bond), or take it out (master NULL). */
int xn_nl_link_set_master(const char *name, const char *master, xn_error **err);
int xn_nl_link_set_mtu(const char *name, unsigned mtu, xn_error **err);
/* Remove a link of any kind (a bridge's ports are released, not removed). */
int xn_nl_link_del(const char *name, xn_error **err);

/* A bridge, up, with forward delay 0 and STP off (as xapi's bridges). */
int xn_nl_bridge_add(const char *name, xn_error **err);
/* A veth pair name <-> peer, both up (made, or found as such). */
int xn_nl_veth_add(const char *name, const char *peer, xn_error **err);
/* Receive every frame on name (a NIC that carries guests' MACs). */
int xn_nl_link_set_promisc(const char *name, bool on, xn_error **err);
/* A kernel bond device in mode "active-backup", "balance-tlb" or
 * "802.3ad", miimon 100, up. Bonds use it only for lacp (802.3ad): the
 * other modes are eBPF ports (bpf_port.h), which need no bonding driver. */
int xn_nl_bond_add(const char *name, const char *mode, xn_error **err);

/* ---- taps ------------------------------------------------------------- */

/* Create tap device name (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, not
 * persistent: it goes when the last descriptor closes), and return its
 * descriptor (O_CLOEXEC) in *fd; the caller hands it to QEMU. */
int xn_nl_tap_open(const char *name, int *fd, xn_error **err);

/* ---- addresses and routes --------------------------------------------- */

/* The IPv4 and IPv6 addresses of name, [{"family": 4|6, "address",
 * "prefix"}] (new reference). */
json_t *xn_nl_addrs(const char *name, xn_error **err);
/* cidr: "10.1.2.3/24" or "fd00::1/64". */
int xn_nl_addr_add(const char *name, const char *cidr, xn_error **err);
int xn_nl_addr_del(const char *name, const char *cidr, xn_error **err);
/* The main table's routes through name, [{"family", "dst" ("default" or
 * a cidr), "gateway" (or null), "metric"}] (new reference). */
json_t *xn_nl_routes(const char *name, xn_error **err);
/* Add (or remove) a route: dst "default" or a cidr, gateway may be NULL,
 * through dev, with metric. */
int xn_nl_route_add(const char *dst, const char *gateway, const char *dev, unsigned metric,
		    xn_error **err);
int xn_nl_route_del(const char *dst, const char *gateway, const char *dev, xn_error **err);

/* ---- rate limits ------------------------------------------------------ */

/* Limit the traffic through name to kbps kilobits per second both ways
 * (0 removes the limit): a token bucket on its egress (traffic towards
 * the guest, for a tap) and a policer on its ingress (from the guest). */
int xn_nl_rate_limit(const char *name, uint64_t kbps, xn_error **err);
/* Remove the ingress half of name's limit, for a device that is gone
 * (nftables keeps it otherwise; the egress half goes with the device). */
int xn_nl_rate_limit_drop(const char *name, xn_error **err);
/* At daemon start: xn_nl_rate_limit_drop for every device that has an
 * ingress limit and is not there. Returns how many, or -1 with err. */
int xn_nl_rate_limit_sweep(xn_error **err);

#endif
