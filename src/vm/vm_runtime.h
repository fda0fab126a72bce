/* vm_runtime.h: running VMs inside the vm module (not a public header
 * for other modules): one `struct dom` per QEMU process, how to start
 * one, and what happens when one goes away. */
#ifndef XN_VM_RUNTIME_H
#define XN_VM_RUNTIME_H

#include "engine/qemu_proc.h"
#include "engine/qmp.h"
#include "storage/storage.h"
#include "vm/vm.h"

struct dom;

/* A lifecycle operation that waits for QEMU to exit (shutdown, reboot,
 * suspend) registers this; it is called once the domain is gone and its
 * VM is recorded Halted. */
typedef void (*dom_exit_fn)(struct dom *d, void *ud);

struct dom {
	xn_host *h;
	char *ref, *uuid, *run_dir;
	pid_t pid;
	uint64_t ticks;
	xn_qemu_proc *proc;         /* NULL when re-attached after a restart */
	xn_qmp *qmp;
	uv_timer_t *poll;           /* watching a re-attached pid die */
	bool gone;
	char *shutdown_reason;      /* from QMP SHUTDOWN: guest-shutdown, guest-reset, ... */
	bool panicked;
	bool expected;              /* we asked it to stop */
	bool restart_after;         /* start it again once it is gone */
	struct start *starting;     /* the start in progress, if any */
	dom_exit_fn on_exit;
	void *on_exit_ud;
	json_t *locks;              /* toolstack locks held on its disks (lock.c keys) */
	struct dom *next;
};

typedef void (*dom_started_fn)(void *ud, xn_error *err);

/* Start QEMU for a VM and bring it to Running (or Paused). incoming_fd
 * >= 0 resumes from a saved state read from that fd (taken over). */
void xn_dom_start(xn_host *h, const char *vm_ref, bool paused, int incoming_fd,
		  dom_started_fn done, void *ud);
struct dom *xn_dom_find(xn_host *h, const char *vm_ref);
/* Ask QEMU to quit now (hard); the exit path follows. */
void xn_dom_kill(struct dom *d);
/* A QMP command on a running domain (fails if QMP is not connected). */
void xn_dom_qmp(struct dom *d, const char *cmd, json_t *args, xn_qmp_reply_fn fn, void *ud);

/* Mark operation name as running on vm (after xn_vm_check_op): its task,
 * the call's (Async.) or one made here (*own_task), is the key in
 * current_operations. Returns the task ref (caller frees), NULL with err. */
char *xn_vm_op_mark(xn_call *c, const char *vm, const char *name, bool *own_task,
		    xn_error **err);
/* The operation is over: out of current_operations; a task of our own
 * is settled with err or result. */
void xn_vm_op_unmark(xn_host *h, const char *vm, const char *task, const char *name,
		     bool own_task, const xn_error *err, json_t *result);

/* Finish a VM change-set: recompute allowed_operations of the VM. */
void xn_vm_refresh_allowed(xn_changes *cs, const char *vm_ref);

/* ---- disks of running domains ---------------------------------------- */

/* The current top block node of the disk with this userdevice in d's
 * QEMU (query-block, device vbd-<userdevice>): drive-<userdevice> at
 * start, but a snapshot's overlay once one was taken. node is borrowed
 * for the call; NULL with err when QEMU has no such disk or it is empty. */
typedef void (*xn_dom_node_fn)(void *ud, const char *node, const xn_error *err);
void xn_dom_disk_node(struct dom *d, const char *userdevice, xn_dom_node_fn fn, void *ud);
/* Whether a VBD opens its disk writable: a Disk in mode RW on a VDI
 * not marked read_only. */
bool xn_vbd_writable(xn_host *h, const char *vbd_ref);
/* Prepare the disk of vbd_ref for vm_ref to open (xn_vdi_prepare_attach)
 * and, when it is opened writable on an SR with a toolstack lock, take
 * the lock and append its key to locks. */
void xn_vm_disk_acquire(xn_host *h, const char *vm_ref, const char *vbd_ref, json_t *locks,
			xn_storage_done done, void *ud);
/* Release the locks in locks on VDI vdi_uuid (every one if NULL) and
 * remove them from the array. */
void xn_vm_disk_release(xn_host *h, json_t *locks, const char *vdi_uuid);
/* QEMU reported DEVICE_DELETED for device id `dev` of d (vm_vbd.c):
 * the end of a hot-unplug, even one whose caller stopped waiting. */
void xn_vbd_device_deleted(struct dom *d, const char *dev);

/* ---- NICs of running domains (vm_vif.c) -------------------------------- */

/* The same for a NIC (device id vif-<device>): the end of a hot-unplug. */
void xn_vif_device_deleted(struct dom *d, const char *dev);
/* Set tap's rate limit from the VIF's qos_algorithm_type "ratelimit" and
 * qos_algorithm_params:kbps, or remove it for any other setting. */
int xn_vif_apply_qos(xn_host *h, const char *vif, const char *tap, xn_error **err);

#endif
