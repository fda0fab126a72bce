/* console.h: the serial console hub. For each running VM the daemon is
 * the one client of QEMU's serial socket; it keeps the recent output in
 * a ring buffer (scroll-back) and relays it to any number of readers
 * attached with `CONNECT /console?ref=<console ref>` (xe console), and
 * their keystrokes to the guest. */
#ifndef XN_CONSOLE_H
#define XN_CONSOLE_H

#include "host/host.h"

#define XN_CONSOLE_SCROLLBACK (64u << 10)

/* Register the CONNECT /console route. */
void xn_consoles_init(xn_host *h);
/* Connect to a VM's serial socket (retrying while QEMU creates it). */
void xn_console_attach(xn_host *h, const char *vm_ref, const char *sock_path);
/* Drop the VM's console: readers are disconnected. */
void xn_console_detach(xn_host *h, const char *vm_ref);

#endif
