/* cloud_init.h: the cloud-init NoCloud seed of a VM (cloud_init.c). */
#ifndef XN_CLOUD_INIT_H
#define XN_CLOUD_INIT_H

#include "host/host.h"
#include "util/err.h"

/* seed: the seed image's path (borrowed, valid during the call), or
 * NULL when the VM has none; err: why it could not be made (owned by
 * the callee). */
typedef void (*xn_cloud_init_done)(void *ud, const char *seed, xn_error *err);

/* Make the seed of vm_ref afresh from its other_config, off the loop
 * (xorriso as a child), and call done once, maybe before returning when
 * the VM has no seed or its keys are bad (INVALID_VALUE). */
void xn_cloud_init_seed(xn_host *h, const char *vm_ref, xn_cloud_init_done done, void *ud);

/* Remove the seed of the VM uuid, if any (the VM is gone). */
void xn_cloud_init_forget(xn_host *h, const char *uuid);

/* The seed files' text for the given keys (pure, for tests): *meta and
 * *user are new strings. hostname must already be checked. */
void xn_cloud_init_render(const char *instance_id, const char *hostname, const char *ssh_key,
			  const char *user_data, char **meta, char **user);

/* Whether s is a host name cloud-init and Linux accept (RFC 1123 labels,
 * at most 63 characters). */
bool xn_cloud_init_hostname_ok(const char *s);

#endif
