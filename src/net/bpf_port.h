/* bpf_port.h: VLANs and bonds as small eBPF programs on tc's clsact
 * hooks, so they work on any kernel with BPF, including those built
 * without 8021q or bonding.
 *
 * A port is a veth pair: `port` goes into a network's bridge like any
 * device, and frames the bridge sends through it come out of `wire`,
 * whose ingress program sends them on to the NIC(s); the NIC's ingress
 * program sends the port's frames back through `wire` into the bridge.
 *
 *   VLAN: wire -> push the 802.1Q tag -> the tagged NIC; the NIC's frames
 *         with that tag -> pop -> wire. Other frames on the NIC go on as
 *         before (to its own bridge, or the host).
 *   bond: wire -> a member (active-backup: the active one; balance-slb:
 *         chosen by a hash of the source MAC among the live members);
 *         each member -> wire (active-backup: only the active member;
 *         balance-slb: every live member, broadcasts and multicasts only
 *         from the first live one, so none arrives twice).
 *
 * The programs hold their settings as constants (tag, interface
 * indexes): changing them (a bond's failover) replaces the program,
 * which tc does atomically. Programs stay attached when the daemon
 * exits; everything goes with the veth pair and the NIC's filter.
 * Errors are INTERNAL_ERROR "bpf: <what> <dev>: <reason>". */
#ifndef XN_NET_BPF_PORT_H
#define XN_NET_BPF_PORT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* The VLAN port for tag (1-4094) on nic: made (or found) and attached. */
int xn_bpf_port_vlan(const char *port, const char *wire, const char *nic, int tag,
		     xn_error **err);
/* Remove it: nic's filter for tag, and the pair (either may be gone). */
int xn_bpf_port_vlan_del(const char *port, const char *nic, int tag, xn_error **err);

/* A bond's members, in order (the first is the primary). */
typedef struct xn_bpf_bond {
	const char *port, *wire;
	const char *const *members;
	size_t n;
	bool balance;          /* balance-slb, else active-backup */
} xn_bpf_bond;

/* Make (or find) the bond's pair and steer its traffic by live[i]
 * (member i has a carrier): *active is set to the active member's
 * index (active-backup) or the first live one, -1 when none is live. */
int xn_bpf_port_bond(const xn_bpf_bond *b, const bool *live, int *active, xn_error **err);
/* Remove the bond's filters from its members, and its pair. */
int xn_bpf_port_bond_del(const xn_bpf_bond *b, xn_error **err);

/* Whether dev has an ingress filter of ours for tag (0 for a bond's). */
bool xn_bpf_port_attached(const char *dev, int tag);

#endif
