/* qemu_argv.h: a VM's records → the argv of its qemu-system-x86_64.
 *
 * A pure function: no I/O, no clock, no randomness, so the same records
 * always give the same command line (golden-tested in tests/golden/argv/,
 * and what makes a migration destination match its source). Storage
 * resolves each VDI to a blockdev protocol node and a format before the
 * call; the engine spawns the result (qemu_proc.h) and drives it over
 * QMP (qmp.h). Hot-plug builds its blockdev-add and device_add arguments
 * with the same functions (xn_qemu_disk_blockdevs, xn_qemu_disk_device),
 * so a disk added later is opened exactly as one present at start.
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
	json_t *node;         /* the VDI's blockdev protocol node from storage
			       * (xn_vdi_node: {"driver":"file","filename":..},
			       * {"driver":"nfs",..}), borrowed; NULL if empty */
	const char *format;   /* "qcow2" or "raw" */
} xn_qemu_disk;

typedef struct xn_qemu_nic {
	json_t *vif;          /* VIF record (borrowed) */
	int fd;               /* the tap's descriptor number in QEMU */
} xn_qemu_nic;

typedef struct xn_qemu_input {
	json_t *vm;                 /* VM record (borrowed) */
	const xn_qemu_disk *disks;
	size_t ndisks;
	const xn_qemu_nic *nics;    /* virtio-net NICs on taps the daemon made */
	size_t nnics;
	const char *engine;         /* "kvm" or "tcg" */
	const char *run_dir;        /* per-VM runtime dir */
	const char *qemu_binary;    /* e.g. "qemu-system-x86_64" */
	const char *incoming;       /* NULL, or e.g. "fd:3" when resuming from a saved state */
	const char *seed;           /* NULL, or a cloud-init NoCloud seed (raw ISO image),
				     * attached read-only as virtio disk "seed" */
} xn_qemu_input;

/* Most disks one VM may have (each takes a PCIe root port on pcie.0). */
#define XN_QEMU_MAX_DISKS 16
/* CD drives sit on the q35 AHCI controller, which has 6 ports. */
#define XN_QEMU_MAX_CDS 6
/* Spare PCIe root ports (rp-hp0..) kept free for hot-plug. A disk
 * present at start sits on its own port rp-vbd-<userdevice>, which
 * hot-plug reuses once that disk is unplugged. */
#define XN_QEMU_HOTPLUG_PORTS 4

/* The guest agent's virtio-serial port: the name guest agents look for,
 * and its QEMU device id (in VSERPORT_CHANGE events). Its socket is
 * <run_dir>/qga.sock. */
#define XN_QEMU_AGENT_PORT "org.qemu.guest_agent.0"
#define XN_QEMU_AGENT_DEVICE "channel-qga"

/* NULL-terminated argv (caller frees with xn_strv_free), or NULL with a
 * XenAPI error: INVALID_VALUE [field, value] for records the function
 * cannot rely on, VM_DUPLICATE_VBD_DEVICE [vm, vbd, device],
 * BOOTLOADER_FAILED [vm, reason] when the VM has no way to boot. */
char **xn_qemu_argv(const xn_qemu_input *in, xn_error **err);

/* The two blockdev objects of a disk with a medium, as -blockdev takes
 * them and blockdev-add too (new references): *file is the storage node
 * named file-<userdevice> with read-only (and discard for writable
 * disks), *drive the format node drive-<userdevice> over it. Fails with
 * the errors of xn_qemu_argv for a bad VBD, VDI or node. */
int xn_qemu_disk_blockdevs(const xn_qemu_disk *d, json_t **file, json_t **drive, xn_error **err);

/* The device_add / -device object (new reference) of a virtio disk:
 * id vbd-<userdevice> on PCIe root port `port`, over drive-<userdevice>.
 * bootindex 0 means none. */
json_t *xn_qemu_disk_device(const xn_qemu_disk *d, const char *port, int bootindex,
			    xn_error **err);

/* The -netdev (key=value form) and -device objects of a NIC: netdev
 * net-<device> on the tap descriptor, virtio-net-pci vif-<device> with
 * the VIF's MAC on PCIe root port `port` (caller frees / new reference).
 * NULL with INVALID_VALUE for a bad device or MAC. */
char *xn_qemu_nic_netdev(const xn_qemu_nic *n, xn_error **err);
json_t *xn_qemu_nic_device(const xn_qemu_nic *n, const char *port, xn_error **err);

/* Whether the disk opens read-only: a CD, a VBD in mode RO or a VDI
 * marked read_only. */
bool xn_qemu_disk_read_only(const xn_qemu_disk *d);

/* QEMU's escaping for a value inside comma-separated option syntax:
 * every ',' doubled. Caller frees. */
char *xn_qemu_opt_escape(const char *s);

#endif
