/* net.h: virtual networks (XenAPI network.*, VIF.*) and what a VM's QEMU
 * needs of them.
 *
 * A network is a Linux bridge (its record's `bridge`; "xapi<N>" when
 * Xenia names it, as xapi does), made when a VM first needs it. A VIF
 * is a tap device the daemon creates in its network's bridge and hands
 * to QEMU as a file descriptor, so QEMU needs no network privileges. A
 * tap is not persistent: it goes with the last descriptor, that is, with
 * its QEMU, so nothing is left behind when a VM stops or a daemon dies. */
#ifndef XN_NET_NET_H
#define XN_NET_NET_H

#include "api/api.h"
#include "host/host.h"

/* network.*, VIF.* and PIF.* messages that need more than the generic
 * accessors. */
void xn_net_register(xn_api *api);
/* At daemon start: the host's PIFs are recorded the first time (pif.c). */
int xn_net_init(xn_host *h, xn_error **err);
/* PIF.scan: a record (and a network) for every physical-looking
 * interface that has none. */
int xn_pif_scan(xn_host *h, xn_error **err);

/* At daemon start, after xn_net_init: VLAN ports a host reboot removed
 * are made again, bonds are steered by their members' links, and the
 * link watch keeps them steered (vlan_bond.c). */
int xn_vlan_bond_init(xn_host *h, xn_error **err);
/* Call fn after each burst of changes to the host's links (linkwatch.c). */
typedef void (*xn_linkwatch_fn)(xn_host *h);
int xn_linkwatch_start(xn_host *h, xn_linkwatch_fn fn, xn_error **err);

/* A random locally administered unicast MAC no VIF has (caller frees). */
char *xn_net_new_mac(xn_host *h);
/* Copies of the VIFs of VM from for VM to, added to cs: with the same
 * MACs (snapshots, reverts) or new ones (clones, copies). */
void xn_net_copy_vifs(xn_host *h, xn_changes *cs, const char *from, const char *to,
		      bool same_macs);

/* A VIF's tap, made for a VM about to start. */
typedef struct xn_net_tap {
	char *vif;          /* VIF ref */
	char *name;         /* the tap device */
	int fd;             /* its descriptor, for QEMU (-1 once handed over) */
} xn_net_tap;

/* The tap device name of a VM's VIF: "vif" + the VM uuid's first 8 hex
 * digits + "." + the VIF's device (caller frees). */
char *xn_net_tap_name(const char *vm_uuid, const char *device);

/* The tap of one VIF of vm, in its network's bridge (made if missing)
 * and up, into *t (fields owned by *t, to free with xn_net_taps_free
 * even on failure, when t->fd may be -1). */
int xn_net_vif_tap(xn_host *h, const char *vm_ref, const char *vif, xn_net_tap *t,
		   xn_error **err);
/* Taps for every VIF of vm, each in its network's bridge (made if
 * missing) and up: *taps (count *n) or -1 with err (nothing left made). */
int xn_net_vm_taps(xn_host *h, const char *vm_ref, xn_net_tap **taps, size_t *n,
		   xn_error **err);
/* Close the descriptors still held and free. */
void xn_net_taps_free(xn_net_tap *taps, size_t n);

/* ---- NAT networks (nat.c) ---------------------------------------------- */

/* A NAT network is a network whose other_config has xapi's "ip_begin",
 * "ip_end", "netmask" and "xenia-nat": "true" (optionally "gateway",
 * else the subnet's .1): guests get addresses from a dnsmasq the daemon
 * runs on its bridge and go out masqueraded through the host. */
bool xn_nat_is(json_t *other_config);
/* network.create's check of a NAT network's other_config (INVALID_VALUE
 * naming the key); 0 for any other network. */
int xn_nat_check(json_t *other_config, xn_error **err);
/* Once net's bridge exists: its gateway address, forwarding, nftables
 * rules and dnsmasq, made or found (0 for a network that is not NAT). */
int xn_nat_up(xn_host *h, const char *net, xn_error **err);
/* After network.create: xn_nat_up for the network of bridge, if NAT
 * (failures are logged: the network is there, its VMs' start retries). */
void xn_nat_bridge_made(xn_host *h, const char *bridge);
/* net's other_config if it is a NAT network (new reference), else NULL:
 * taken before the record goes, for xn_nat_down. */
json_t *xn_nat_config(xn_host *h, const char *net);
/* Stop bridge's dnsmasq, remove its address and nftables rules; config
 * is xn_nat_config's (taken over; NULL does nothing). */
void xn_nat_down(xn_host *h, const char *bridge, json_t *config);
/* At daemon start: the default NAT network on a data directory's first
 * start, and xn_nat_up for NAT networks whose bridge is there or has
 * running VMs' VIFs (a restart finds their dnsmasq). */
int xn_nat_init(xn_host *h, xn_error **err);
/* The lowest "xapi<N>" no network record or host link names (caller frees). */
char *xn_net_free_bridge_name(xn_host *h);

#endif
