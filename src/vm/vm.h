/* vm.h: VMs: which operations are allowed when, and the lifecycle of
 * running VMs (start, shutdown, reboot, suspend, resume, pause) as
 * explicit state machines over the QEMU engine.
 *
 * The database is the truth about what a VM should be; the running QEMU
 * processes are the truth about what it is. At start the daemon
 * reconciles the two (xn_vms_init): it re-attaches to QEMUs of running
 * VMs, kills QEMUs nobody should be running, and marks VMs whose QEMU
 * died as halted. */
#ifndef XN_VM_H
#define XN_VM_H

#include "api/api.h"
#include "engine/qmp.h"

/* ---- allowed operations (vm_ops.c), pure ----------------------------- */

/* The XenAPI power states an operation is allowed in, as xapi spells
 * them for VM_BAD_POWER_STATE ("halted, suspended"), or NULL if the
 * operation is unknown. */
const char *xn_vm_op_states(const char *op);
/* Check op on a VM record; on refusal fill err with xapi's error
 * (VM_BAD_POWER_STATE, VM_IS_TEMPLATE, OTHER_OPERATION_IN_PROGRESS,
 * OPERATION_BLOCKED) and return -1. */
int xn_vm_check_op(const char *ref, json_t *vm, const char *op, xn_error **err);
/* The highest VBD userdevice (each disk takes a PCIe root port). */
#define XN_VM_MAX_USERDEVICE 15
/* Whether dev can number a new device of vm: a decimal from 0 to max
 * that no object of the VM's set (VBDs by userdevice, VIFs by device)
 * has. INVALID_VALUE [field, dev] or DEVICE_ALREADY_EXISTS [dev]. */
int xn_vm_device_free(xn_host *h, const char *vm, const char *set, const char *key,
		      const char *dev, long max, const char *field, xn_error **err);
/* The allowed_operations set for a VM record (new reference). */
json_t *xn_vm_allowed_ops(json_t *vm);

/* ---- runtime (vm_runtime.c, vm_lifecycle.c) ------------------------- */

int xn_vms_init(xn_host *h, xn_error **err);
/* The daemon is stopping: let go of the QEMUs, leave them running. */
void xn_vms_detach_all(xn_host *h);

void xn_vm_register(xn_api *api);

/* ---- disks of running VMs, for storage (vm_disk.c) -------------------- */

typedef void (*xn_vm_disk_done)(void *ud, xn_error *err /* taken over */);
/* Whether a QEMU runs for the VM (starting, running, paused, or saving). */
bool xn_vm_has_qemu(xn_host *h, const char *vm_ref);
/* The running VM using vbd_ref moves that disk onto location, a new
 * empty overlay of the disk's current image on the same SR (QMP
 * blockdev-add + blockdev-snapshot); the guest notices nothing. */
void xn_vm_disk_switch(xn_host *h, const char *vbd_ref, const char *location,
		       xn_vm_disk_done done, void *ud);
/* On the running VM using vbd_ref, merge the image base_file (a backing
 * image of the disk, given as its file name) into the image above it
 * (QMP block-stream), so that base_file drops out of the chain. */
void xn_vm_disk_stream(xn_host *h, const char *vbd_ref, const char *base_file,
		       xn_vm_disk_done done, void *ud);
/* After a daemon restart, for a re-attached VM: a disk whose QEMU still
 * writes the image the records made a base copy (the previous daemon
 * died between a snapshot's commit and its switch) is switched onto the
 * VDI's recorded image, an empty overlay of it. Then done. */
void xn_vm_disks_reconcile(xn_host *h, const char *vm_ref, xn_vm_disk_done done, void *ud);
/* Save the (stopped) VM's memory and device state to path (migrate to
 * an fd, bandwidth unlimited, fsync'ed). */
void xn_vm_save_memory(xn_host *h, const char *vm_ref, const char *path, xn_vm_disk_done done,
		       void *ud);
/* A QMP command without arguments on a running VM ("stop", "cont"). */
void xn_vm_qmp_simple(xn_host *h, const char *vm_ref, const char *cmd, xn_vm_disk_done done,
		      void *ud);

/* ---- running VMs, for metrics (vm_disk.c) ------------------------------ */

/* The pid of the QEMU running vm_ref, 0 if none runs. */
pid_t xn_vm_qemu_pid(xn_host *h, const char *vm_ref);
/* A QMP command (args taken over, may be NULL) on the QEMU running
 * vm_ref; fn gets the reply, or VM_BAD_POWER_STATE if none runs. */
void xn_vm_qmp(xn_host *h, const char *vm_ref, const char *cmd, json_t *args,
	       xn_qmp_reply_fn fn, void *ud);

/* Built-in templates (templates.c). */
int xn_templates_init(xn_host *h, xn_error **err);

#endif
