/* vm_guest.h: what the guest agent tells about a running VM (inside the
 * vm module): its VM_guest_metrics record, kept from the agent's answers,
 * and clean shutdown and reboot through the agent.
 *
 * Semantics, as xapi's: a VM whose agent never answered has no
 * VM_guest_metrics (VM.guest_metrics is NULL, and `xe` shows its guest
 * fields as <not in database>); the record is made at the agent's first
 * answer and then follows it: live, PV_drivers_detected and
 * PV_drivers_up_to_date are true while the agent answers and false once
 * it stops (no answer, its port closed in the guest, the VM halted).
 * Either is how a VM without a working agent is flagged. The record is
 * written only when something in it changes (last_updated says when),
 * and goes with the VM (VM.destroy). */
#ifndef XN_VM_GUEST_H
#define XN_VM_GUEST_H

#include <jansson.h>

#include "host/host.h"

struct dom;

/* How often a running VM's agent is asked (ms), and how long each answer
 * may take. */
#define XN_GUEST_POLL_MS 10000
#define XN_GUEST_ANSWER_MS 5000

/* Start following d's agent (d is running: a start or a re-attach). */
void xn_vm_guest_attach(struct dom *d);
/* Stop (d's QEMU is gone, or the daemon lets go of it). Pending agent
 * requests are answered (as failures) before this returns. */
void xn_vm_guest_detach(struct dom *d);
/* QEMU's VSERPORT_CHANGE for d (data borrowed): the guest opened or
 * closed a virtio-serial port; the agent's is the one that counts. */
void xn_vm_guest_port_event(struct dom *d, json_t *data);
/* In cs, mark the guest metrics of vm_ref as no longer live (the VM is
 * halted or its QEMU is gone): the OS and agent version stay, the
 * addresses and memory go. */
void xn_vm_guest_halted(xn_host *h, xn_changes *cs, const char *vm_ref);

/* Clean shutdown (or reboot) through the agent: a guest-ping first (the
 * agent may have gone since the last poll), then guest-shutdown. fn gets
 * by_agent true when the agent took the request, false when it is known
 * absent, did not answer or refused: the caller then uses ACPI. Called
 * once: at once when the agent is known absent, else from the loop,
 * also (false) when d goes away meanwhile (see xn_vm_guest_detach). */
typedef void (*xn_guest_shutdown_fn)(void *ud, bool by_agent);
void xn_vm_guest_shutdown(struct dom *d, bool reboot, xn_guest_shutdown_fn fn, void *ud);

/* ---- pure: the record's maps from the agent's answers ------------------- */

/* os_version from guest-get-osinfo: name, distro, major, minor, uname
 * (new reference; keys the agent gave no value for are left out). */
json_t *xn_guest_os_version(json_t *osinfo);
/* PV_drivers_version from the agent's version ("7.2.22"): major, minor,
 * micro (-1 when absent, as xapi), application. */
json_t *xn_guest_drivers_version(const char *version);
/* networks from guest-network-get-interfaces: for each interface whose
 * hardware address is a VIF's (macs: lowercase MAC -> VIF device),
 * "<device>/ip" (its first IPv4), "<device>/ipv4/<n>", "<device>/ipv6/<n>". */
json_t *xn_guest_networks(json_t *ifaces, json_t *macs);
/* memory from /proc/meminfo text: total and free (MemAvailable, else
 * MemFree), in KiB as the kernel gives them; {} if neither is there. */
json_t *xn_guest_memory(const char *meminfo);

#endif
