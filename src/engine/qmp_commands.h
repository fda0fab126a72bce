/* qmp_commands.h: typed wrappers of the QMP commands the daemon uses,
 * one small function per command (libvirt's qemu_monitor_json style).
 *
 * Each queues its command on an xn_qmp session (qmp.h) and reports
 * through a callback typed for what the command returns. err is NULL on
 * success; otherwise an INTERNAL_ERROR naming the command and QEMU's
 * description, or saying that the session ended first. Callbacks may be
 * NULL when the caller does not care. */
#ifndef XN_ENGINE_QMP_COMMANDS_H
#define XN_ENGINE_QMP_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/qmp.h"

/* Commands that return nothing of interest. */
typedef void (*xn_qmp_done_fn)(void *ud, const xn_error *err);

/* query-status: status is QEMU's RunState ("prelaunch", "running",
 * "paused", "inmigrate", "postmigrate", "guest-panicked", ...), borrowed. */
typedef void (*xn_qmp_status_fn)(void *ud, const char *status, bool running,
				 const xn_error *err);

/* query-migrate, the parts the daemon uses. Strings borrowed. */
typedef struct xn_qmp_migrate_info {
	const char *status;       /* "none", "setup", "active", "completed", "failed", ... */
	uint64_t ram_transferred; /* bytes */
	uint64_t ram_remaining;
	uint64_t ram_total;
	int64_t total_time_ms;    /* -1 when QEMU does not say */
	int64_t downtime_ms;      /* -1 until completed */
	const char *error_desc;   /* why it failed, or NULL */
} xn_qmp_migrate_info;
typedef void (*xn_qmp_migrate_fn)(void *ud, const xn_qmp_migrate_info *info,
				  const xn_error *err);

/* Run state. */
void xn_qmp_cont(xn_qmp *q, xn_qmp_done_fn fn, void *ud);
void xn_qmp_stop(xn_qmp *q, xn_qmp_done_fn fn, void *ud);
/* ACPI power button: the guest decides (clean shutdown). */
void xn_qmp_system_powerdown(xn_qmp *q, xn_qmp_done_fn fn, void *ud);
/* Hard reset of the machine, in place. */
void xn_qmp_system_reset(xn_qmp *q, xn_qmp_done_fn fn, void *ud);
/* QEMU exits; the session's `closed` callback follows the reply. */
void xn_qmp_quit(xn_qmp *q, xn_qmp_done_fn fn, void *ud);
void xn_qmp_query_status(xn_qmp *q, xn_qmp_status_fn fn, void *ud);

/* Migration. */
/* migrate-set-capabilities with one capability, e.g. "events". */
void xn_qmp_migrate_set_capability(xn_qmp *q, const char *capability, bool on,
				   xn_qmp_done_fn fn, void *ud);
/* migrate-set-parameters: max-bandwidth in bytes/s, downtime-limit in ms.
 * QEMU's default bandwidth (128 MiB/s) makes local saves slow. */
void xn_qmp_migrate_set_parameters(xn_qmp *q, uint64_t max_bandwidth,
				   uint64_t downtime_limit_ms, xn_qmp_done_fn fn, void *ud);
/* Start migrating to uri ("fd:<name>", "tcp:host:port", "exec:..."). */
void xn_qmp_migrate(xn_qmp *q, const char *uri, xn_qmp_done_fn fn, void *ud);
void xn_qmp_query_migrate(xn_qmp *q, xn_qmp_migrate_fn fn, void *ud);

/* File descriptors. getfd passes fd (duplicated; the caller keeps its
 * own) under fdname, for "fd:<fdname>" URIs; closefd drops it. */
void xn_qmp_getfd(xn_qmp *q, int fd, const char *fdname, xn_qmp_done_fn fn, void *ud);
void xn_qmp_closefd(xn_qmp *q, const char *fdname, xn_qmp_done_fn fn, void *ud);

/* Reading replies (pure functions over the decoded "return" value). */
/* query-block: the node-name of the medium in the device whose qdev id
 * is `id` (borrowed from ret), or NULL if there is no such device or it
 * has no medium. A snapshot may have put a new overlay on top, so this,
 * not the name given at start, is the device's current top node. */
const char *xn_qmp_block_node_of(json_t *query_block, const char *id);
/* query-block: the "inserted" object (the medium: node-name, file,
 * image) of device `id` (borrowed), NULL if none. */
json_t *xn_qmp_block_inserted_of(json_t *query_block, const char *id);
/* query-pci: whether the PCI bridge (e.g. a pcie-root-port) with qdev id
 * `id` exists and has no device below it. */
bool xn_qmp_pci_port_free(json_t *query_pci, const char *id);
/* x-debug-query-block-graph: the names of the block nodes reachable from
 * node `top` through its children (backing images, files), `top` first
 * and every node before its children (new reference: array of strings),
 * the order in which blockdev-del can release a whole chain. */
json_t *xn_qmp_graph_chain(json_t *graph, const char *top);
/* x-debug-query-block-graph and query-named-block-nodes (flat): the
 * qcow2 node whose image is the file `file` (*base, found through the
 * protocol node that opens it), the node above it (*above) and below
 * it (*below, NULL at the bottom of the chain); names borrowed from the
 * replies. False if file has no node with one above it. */
bool xn_qmp_chain_around(json_t *graph, json_t *named, const char *file, const char **above,
			 const char **base, const char **below);

#endif
