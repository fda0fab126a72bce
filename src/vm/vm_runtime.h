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
	struct guest *guest;        /* its guest agent (vm_guest.c), once running */
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

/* ---- hot-plug operations (vm_hotplug.c) ------------------------------- */

/* What disk (vm_vbd.c) and NIC (vm_vif.c) hot-plug share: one operation
 * per device kind and VM in flight, a free PCIe root port found with
 * query-pci, and device_del waited out until DEVICE_DELETED. A kind's
 * operation struct starts with an xn_hotplug_op; its table says the
 * rest. */
typedef struct xn_hotplug_op xn_hotplug_op;

typedef struct xn_hotplug_kind {
	const char *cls;          /* "VBD": the class, in errors */
	const char *id;           /* "vbd": device id <id>-<device>, own port rp-<id>-<device> */
	const char *device_field; /* "userdevice": the record's field for <device> */
	const char *vm_field;     /* "VBDs": the VM's list of them */
	const char *noun;         /* "disk": in messages */
	const char *spares;       /* "disks": what the spare ports take, in the error */
	size_t size;              /* of the kind's operation struct */
	/* device_del finding no such device: the record was stale, the
	 * device counts as deleted (else the unplug fails). */
	bool missing_is_stale;
	/* Plug: o->port is free for the device (the query-pci step is done). */
	void (*port_found)(xn_hotplug_op *o);
	/* Unplug: QEMU released the device; finish and end o. */
	void (*gone)(xn_hotplug_op *o);
	/* Free the kind's own fields of o (not o itself). */
	void (*free)(xn_hotplug_op *o);
} xn_hotplug_kind;

struct xn_hotplug_op {
	const xn_hotplug_kind *kind;
	xn_call *call;            /* NULL once answered (a late unplug) */
	xn_host *h;
	const char *name;         /* "plug", "unplug", ... (static) */
	char *ref, *vm, *device;  /* the VBD or VIF, its VM, its <device> */
	char *port;               /* plug: the root port taken */
	bool requested;           /* unplug: device_del answered */
	bool deleted;             /* unplug: DEVICE_DELETED seen */
	uv_timer_t *timer;        /* unplug: waiting for DEVICE_DELETED */
	xn_hotplug_op *link;
};

/* A new operation `name` (static) on device ref for call c (NULL: no
 * caller), in flight until ended. */
xn_hotplug_op *xn_hotplug_op_new(const xn_hotplug_kind *k, xn_host *h, xn_call *c,
				 const char *name, const char *ref);
/* Out of flight and freed. */
void xn_hotplug_op_free(xn_hotplug_op *o);
/* Answer the call (err taken over; none: success); o stays in flight. */
void xn_hotplug_answer(xn_hotplug_op *o, xn_error *err);
/* Answer and free. */
void xn_hotplug_end(xn_hotplug_op *o, xn_error *err);
/* "<what> of VBD <uuid>: <qerr's message or: QEMU is gone>" (caller frees). */
xn_error *xn_hotplug_error(xn_hotplug_op *o, const char *what, const xn_error *qerr);
/* Set fields (taken) of the device's record, if it still exists, and end o. */
void xn_hotplug_commit(xn_hotplug_op *o, json_t *fields);

/* "halted" for power_state "Halted" and so on, as xapi's errors say. */
const char *xn_hotplug_lower_state(const char *ps);
/* The running domain of ref's VM for a plug or unplug: VM_BAD_POWER_STATE,
 * DEVICE_ALREADY_ATTACHED or _DETACHED first, as xapi; NULL with err. */
struct dom *xn_hotplug_dom(xn_host *h, const xn_hotplug_kind *k, const char *ref, bool plug,
			   xn_error **err);
/* OTHER_OPERATION_IN_PROGRESS if an operation of this kind with a caller,
 * or any VM operation, runs on vm. */
int xn_hotplug_idle(xn_host *h, const xn_hotplug_kind *k, const char *vm, xn_error **err);

/* Plug: ask d which root port is free (the device's own rp-<id>-<device>,
 * else a spare rp-hp<k>), set o->port and go on with k->port_found; ends
 * o with the error if none is. */
void xn_hotplug_find_port(struct dom *d, xn_hotplug_op *o);
/* Unplug: device_del <id>-<device>, then wait for DEVICE_DELETED (k->gone
 * follows) up to XN_HOTPLUG_UNPLUG_TIMEOUT_MS; past it the caller gets
 * DEVICE_DETACH_REJECTED and o waits on for a late one. */
void xn_hotplug_unplug(struct dom *d, xn_hotplug_op *o);
/* DEVICE_DELETED for QEMU device id dev of d: finishes the unplug of a
 * device of kind k, even one nobody waits for any more (a timeout, a
 * daemon restart). Ids of other kinds are ignored. */
void xn_hotplug_device_deleted(const xn_hotplug_kind *k, struct dom *d, const char *dev);

#endif
