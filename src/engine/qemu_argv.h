/* qemu_argv.h: a VM's records → the argv of its qemu-system-x86_64.
 *
 * A pure function: no I/O, no clock, no randomness, so the same records
 * always give the same command line (golden-tested in tests/golden/argv/,
 * and what makes a migration destination match its source). Storage
 * resolves each VDI to a path and format before the call; the engine
 * spawns the result (qemu_proc.h) and drives it over QMP (qmp.h).
 *
 * The machine is a q35 started paused (-S): the daemon attaches to QMP,
 * then resumes it with `cont`. User strings (name_label, paths) never go
 * into QEMU's comma-separated option syntax unescaped; disks use the
 * JSON forms of -blockdev and -device. */
#ifndef XN_ENGINE_QEMU_ARGV_H
#define XN_ENGINE_QEMU_ARGV_H

#include <jansson.h>

#include "util/err.h"

typedef struct xn_qemu_disk {
	json_t *vbd;          /* VBD record (borrowed) */
	json_t *vdi;          /* VDI record, NULL for an empty CD drive */
	const char *path;     /* image path resolved by storage, NULL if empty */
	const char *format;   /* "qcow2" or "raw" */
} xn_qemu_disk;

typedef struct xn_qemu_input {
	json_t *vm;                 /* VM record (borrowed) */
	const xn_qemu_disk *disks;
	size_t ndisks;
	const char *engine;         /* "kvm" or "tcg" */
	const char *run_dir;        /* per-VM runtime dir */
	const char *qemu_binary;    /* e.g. "qemu-system-x86_64" */
	const char *incoming;       /* NULL, or e.g. "fd:3" when resuming from a saved state */
} xn_qemu_input;

/* Most disks one VM may have (each takes a PCIe root port on pcie.0). */
#define XN_QEMU_MAX_DISKS 16
/* CD drives sit on the q35 AHCI controller, which has 6 ports. */
#define XN_QEMU_MAX_CDS 6
/* Spare PCIe root ports (rp-hp0..) kept free for hot-plug. */
#define XN_QEMU_HOTPLUG_PORTS 4

/* NULL-terminated argv (caller frees with xn_strv_free), or NULL with a
 * XenAPI error: INVALID_VALUE [field, value] for records the function
 * cannot rely on, VM_DUPLICATE_VBD_DEVICE [vm, vbd, device],
 * BOOTLOADER_FAILED [vm, reason] when the VM has no way to boot. */
char **xn_qemu_argv(const xn_qemu_input *in, xn_error **err);

/* QEMU's escaping for a value inside comma-separated option syntax:
 * every ',' doubled. Caller frees. */
char *xn_qemu_opt_escape(const char *s);

#endif
