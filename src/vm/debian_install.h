/* debian_install.h: the "Debian 12" template's installer (debian_install.c). */
#ifndef XN_DEBIAN_INSTALL_H
#define XN_DEBIAN_INSTALL_H

#include "host/host.h"
#include "storage/storage.h"

/* Whether VM.provision of vm_ref installs Debian into its first disk
 * (other_config:xenia-install=debootstrap). */
bool xn_debian_install_wanted(xn_host *h, const char *vm_ref);

/* Install Debian into target (the qemu-img name of the VM's new, empty
 * disk) in a child process, from the VM's other_config:install-repository
 * (default: the host's Debian mirror) and install-distribution, with root's password; task (may be NULL)
 * gets the progress. done is called once, with an error (INTERNAL_ERROR
 * naming the installer's last words) if the install failed. */
void xn_debian_install(xn_host *h, const char *vm_ref, const char *task, const char *target,
		       const char *password, xn_storage_done done, void *ud);

#endif
