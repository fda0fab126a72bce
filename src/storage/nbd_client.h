/* nbd_client.h: a disk image opened through a private qemu-nbd, read
 * and written from the daemon's loop with libnbd's asynchronous API.
 *
 * The daemon never parses image formats: qemu-nbd (QEMU's own block
 * layer) serves the image on a Unix socket only this daemon knows, and
 * libnbd speaks NBD to it, its socket watched by a uv_poll handle, so
 * several requests are in flight at once and the loop never blocks.
 * qemu-nbd serves one client and exits when that client disconnects, so
 * a daemon killed with -9 leaves no server behind once connected. */
#ifndef XN_NBD_CLIENT_H
#define XN_NBD_CLIENT_H

#include <uv.h>

#include "util/err.h"

typedef struct xn_nbd xn_nbd;

/* A request finished: error is 0 or an errno value. */
typedef void (*xn_nbd_cb)(void *ud, int error);
/* Opening finished: NULL or the reason (taken over by the callee). */
typedef void (*xn_nbd_ready)(void *ud, xn_error *err);

enum xn_nbd_mode {
	XN_NBD_READ,          /* shared with other readers */
	XN_NBD_WRITE,         /* QEMU's write lock; xn_nbd_flush makes writes durable */
	/* The same, but qemu-nbd never syncs (much faster: QEMU orders its
	 * metadata updates with syncs otherwise); the caller syncs the file
	 * once qemu-nbd has exited. For a new image nobody else reads. */
	XN_NBD_WRITE_UNSAFE,
};

/* Serve image (a path or URL QEMU opens, of QEMU format fmt) on sock
 * and connect to it; ready is called once, and requests may be made
 * after a successful ready. */
xn_nbd *xn_nbd_open(uv_loop_t *loop, const char *image, const char *fmt,
		    enum xn_nbd_mode mode, const char *sock, xn_nbd_ready ready, void *ud);
/* The image's virtual size (after ready). */
int64_t xn_nbd_size(const xn_nbd *n);
/* Requests: buf must stay valid until done is called. Returns -1 (done
 * not called) if the connection is broken. */
int xn_nbd_pread(xn_nbd *n, void *buf, size_t len, uint64_t off, xn_nbd_cb done, void *ud);
int xn_nbd_pwrite(xn_nbd *n, const void *buf, size_t len, uint64_t off, xn_nbd_cb done,
		  void *ud);
/* Make every completed write durable (qemu-nbd flushes the image). */
int xn_nbd_flush(xn_nbd *n, xn_nbd_cb done, void *ud);
/* Requests sent and not yet completed. */
unsigned xn_nbd_in_flight(const xn_nbd *n);
/* Disconnect and wait for qemu-nbd to exit (so the image is closed):
 * then closed(ud). Requests still in flight complete with ECANCELED
 * first. Also the way to give up an open in progress. */
void xn_nbd_close(xn_nbd *n, void (*closed)(void *ud), void *ud);

#endif
