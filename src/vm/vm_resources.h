/* vm_resources.h: resource control of running VMs, inside the vm module:
 * the credit scheduler's VCPUs_params (weight, cap, mask) on cgroups and
 * vCPU thread affinity (vm_resources.c), and the memory balloon between
 * the dynamic limits (vm_memory.c). vm_runtime.c calls the hooks below
 * at the points of a QEMU's life they name. */
#ifndef XN_VM_RESOURCES_H
#define XN_VM_RESOURCES_H

#include <sched.h>

#include "vm/vm_runtime.h"

/* The most vCPUs a VM may have (VCPUs_max is checked against it). */
#define XN_VM_MAX_VCPUS 64

/* A VM's VCPUs_params, parsed. */
typedef struct xn_vcpu_params {
	unsigned weight;  /* 1-65535; 256 when not given */
	unsigned cap;     /* percent of one CPU; 0 = no cap */
	bool pinned;      /* a mask was given: vCPUs run on `mask` only */
	cpu_set_t mask;
} xn_vcpu_params;

/* ---- pure (vm_resources.c) ---- */

/* xapi's mask: comma-separated CPU numbers ("0,2"), each one of host's.
 * INVALID_VALUE ["VCPUs_params:mask", s] otherwise. An empty string is
 * no mask (out empty, returns 0). */
int xn_cpu_mask_parse(const char *s, const cpu_set_t *host, cpu_set_t *out, xn_error **err);
/* Parse and check a VCPUs_params map (other keys are left alone) for a
 * VM of vcpus vCPUs on a host with CPUs host: weight 1-65535, cap
 * 0-100*vcpus, mask as above; INVALID_VALUE ["VCPUs_params:<key>",
 * value] for the first bad one. */
int xn_vcpu_params_parse(json_t *params, long vcpus, const cpu_set_t *host,
			 xn_vcpu_params *out, xn_error **err);

/* ---- hooks for vm_runtime.c ---- */

/* At daemon start, after the running QEMUs were re-attached: find the
 * cpu cgroup hierarchy, and remove the groups of our VMs that no QEMU
 * runs for any more. */
void xn_vm_resources_init(xn_host *h);
/* A new QEMU, still stopped (before `cont`): into its VM's group with
 * the VM's weight and cap, vCPUs pinned, the balloon at its target.
 * Fails (the start fails) if the settings cannot be applied. */
int xn_dom_resources_start(struct dom *d, xn_error **err);
/* A QEMU re-attached after a daemon restart: the same settings applied
 * again from the records (failures are logged). */
void xn_dom_resources_reattach(struct dom *d);
/* The QEMU of d is gone: its group goes too. */
void xn_dom_resources_release(struct dom *d);

/* ---- memory (vm_memory.c) ---- */

/* Ask the balloon of d for the VM's target, let QEMU poll the guest's
 * memory statistics, record memory_target. The target is
 * memory_dynamic_max, or for a re-attached QEMU the recorded
 * memory_target if it is still within the dynamic range. The QMP
 * commands are queued (before a start's `cont`); failures are logged. */
void xn_dom_memory_start(struct dom *d, bool reattached);
/* QEMU's BALLOON_CHANGE event (data: {"actual": bytes}):
 * VM_metrics.memory_actual follows. */
void xn_dom_balloon_changed(struct dom *d, json_t *data);

#endif
