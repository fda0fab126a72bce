/* bootcfg.h: the PV bootloader's reading of a guest's boot menu (grub.cfg
 * or extlinux/syslinux .cfg) into the one entry to boot: its kernel, its
 * initrds and its command line. Pure functions of the text (no I/O), so
 * they are unit-tested on their own; the text is untrusted guest data,
 * so nothing here evaluates it beyond the few commands a menu needs.
 *
 * An entry is chosen by `select` (PV_bootloader_args' --entry): a number
 * counted from 0, a title, a grub menuentry id, or "a>b" into a grub
 * submenu; without one, by the config's own default (grub's `set
 * default=`, extlinux's DEFAULT or MENU DEFAULT), else the first. */
#ifndef XN_VM_BOOTCFG_H
#define XN_VM_BOOTCFG_H

#include "util/err.h"

typedef struct xn_boot_entry {
	char *title;
	char *kernel;   /* the path as the config writes it, a grub device prefix removed */
	char **initrds; /* NULL-terminated, may be empty */
	char *args;     /* the kernel command line, "" when none */
} xn_boot_entry;

/* The entry of a grub.cfg to boot (caller frees), NULL with err when
 * there is none or select names none. */
xn_boot_entry *xn_bootcfg_grub(const char *text, const char *select, xn_error **err);
/* The same for extlinux.conf / syslinux.cfg. */
xn_boot_entry *xn_bootcfg_extlinux(const char *text, const char *select, xn_error **err);
void xn_boot_entry_free(xn_boot_entry *e);

#endif
