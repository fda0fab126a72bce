/* vnc.h: a VM's VNC display over a websocket (the web console's
 * graphical console, noVNC). QEMU serves VNC on a Unix socket in the
 * VM's run directory (VMs with VGA: see engine/qemu_argv.c); the daemon
 * relays the RFB byte stream between it and the browser unchanged. */
#ifndef XN_VNC_H
#define XN_VNC_H

#include "api/http.h"
#include "host/host.h"

/* Answer a websocket request for vm_ref's display: connect to its VNC
 * socket, then upgrade; 404 if the VM has no display now. The caller
 * checked the session. */
void xn_vnc_proxy(xn_host *h, xn_http_req *req, const char *vm_ref);

#endif
