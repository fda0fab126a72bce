/* host.h: this host's daemon state, shared by every module: the loop,
 * the object store, where data lives, and the refs of the objects that
 * describe this host (pool, host, control domain, default SR).
 *
 * host.c also creates those objects on first start and refreshes the
 * host record (engine, CPU, memory, software version) on every start. */
#ifndef XN_HOST_H
#define XN_HOST_H

#include <uv.h>

#include "db/db.h"

typedef struct xn_host {
	uv_loop_t *loop;
	xn_db *db;
	char *data_dir;      /* absolute */
	char *run_dir;       /* DATA/run: per-VM runtime dirs */
	char *images_dir;    /* where `make` put the built-in images */
	char *web_dir;       /* the built web console (build/web) */
	char *socket_path;
	char *listen;        /* ADDR:PORT or NULL */
	bool listen_plain;   /* plain HTTP there (loopback only) instead of HTTPS */
	const char *engine;  /* "kvm" or "tcg" */
	char *qemu_binary;
	char *host_ref, *pool_ref, *dom0_ref, *local_sr_ref;
	unsigned clean_shutdown_timeout_ms;
	uint64_t session_timeout_ms;  /* idle sessions expire after this */
	struct xn_api *api;
	struct xn_vms *vms;  /* the VM runtime (vm/) */
	struct xn_consoles *consoles;
} xn_host;

/* Create (first start) or refresh the pool, host, host_metrics and
 * control-domain records. */
int xn_host_init_records(xn_host *h, xn_error **err);

/* The address other hosts and clients reach this one at. */
const char *xn_host_address(xn_host *h);

#endif
