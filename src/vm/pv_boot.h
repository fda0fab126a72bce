/* pv_boot.h: the PV bootloader (xapi's PV_bootloader "pygrub"): at each
 * start, the kernel and initrd a guest's own boot menu names are read
 * out of its boot disk (guest_fs.h, no mount) into the VM's run
 * directory, and QEMU boots them directly, so a guest upgrades its own
 * kernel. A VM uses it when PV_bootloader is "pygrub" (or "xenia") and
 * HVM_boot_policy is empty; PV_kernel and PV_ramdisk are then ignored,
 * PV_args are appended to the menu entry's command line.
 *
 * PV_bootloader_args, pygrub's options: --entry=N|title|id (grub "a>b"
 * into submenus), --kernel=PATH and --ramdisk=PATH (on the guest disk,
 * instead of the entry's), --args=ARGS (appended). */
#ifndef XN_VM_PV_BOOT_H
#define XN_VM_PV_BOOT_H

#include <jansson.h>

#include "vm/vm.h"

/* The files in the run directory while QEMU loads them. */
#define XN_PV_BOOT_KERNEL "pv-kernel"
#define XN_PV_BOOT_INITRD "pv-initrd"
/* What a guest may hand over, kernel and initrds together. */
#define XN_PV_BOOT_MAX_BYTES (512ull << 20)

typedef struct xn_pv_boot {
	char *kernel, *ramdisk; /* paths in the run directory; ramdisk NULL if none */
	char *args;             /* the whole kernel command line */
} xn_pv_boot;

/* 1 if the VM record vm boots through the bootloader, 0 if not, -1 with
 * UNKNOWN_BOOTLOADER for a PV_bootloader this host does not have. */
int xn_pv_boot_wanted(json_t *vm, xn_error **err);

/* boot taken over (NULL with err); err taken over. */
typedef void (*xn_pv_boot_done)(void *ud, xn_pv_boot *boot, xn_error *err);
/* Read vm_ref's boot disk on the thread pool and write its kernel and
 * initrd into run_dir (emptied first; removed again on failure). Errors
 * are BOOTLOADER_FAILED [vm, why]. */
void xn_pv_boot_run(xn_host *h, const char *vm_ref, const char *run_dir, xn_pv_boot_done done,
		    void *ud);
void xn_pv_boot_free(xn_pv_boot *b);

#endif
