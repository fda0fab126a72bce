/* cgroup.h: CPU control groups, one per VM, for the credit scheduler's
 * weight and cap (xenapi.md: VCPUs_params:weight, VCPUs_params:cap).
 *
 * A VM's group is <hierarchy>/<base>/<name> (base "xenia", name the VM's
 * uuid) in whichever hierarchy carries the cpu controller: cgroup v2
 * (cpu.weight, cpu.max) or a v1 hierarchy (cpu.shares,
 * cpu.cfs_quota_us over cpu.cfs_period_us), found in
 * /proc/self/mountinfo. Groups of other software beside ours (a
 * "machine" group of libvirt, say) are never touched; <base> itself is
 * made once and left in place, since several daemons may share it.
 *
 * Mapping: weight is relative, 256 the default, as in Xen's credit
 * scheduler; it maps linearly onto the controller's own default (v1
 * shares 1024, v2 weight 100). cap is a percentage of one CPU (50 = half
 * of one, 200 = two; 0 = no cap) and becomes a CFS quota per 100 ms
 * period over the whole group, every thread of the VM's QEMU included.
 *
 * Everything here is synchronous file I/O on cgroupfs, which does not
 * block. */
#ifndef XN_HOST_CGROUP_H
#define XN_HOST_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* The default weight: a VM without VCPUs_params:weight gets this. */
#define XN_CGROUP_WEIGHT_DEFAULT 256
/* The CFS period caps are measured over, in microseconds. */
#define XN_CGROUP_PERIOD_US 100000

typedef struct xn_cgroups xn_cgroups;

/* The hierarchy holding the cpu controller, from the host's mounts, and
 * <base> made in it (v2: with the cpu controller enabled for its
 * children). NULL with INTERNAL_ERROR if the host has none or base
 * cannot be made. */
xn_cgroups *xn_cgroups_open(const char *base, xn_error **err);
void xn_cgroups_free(xn_cgroups *cg);
/* 1 or 2. */
int xn_cgroups_version(const xn_cgroups *cg);
/* The directory of group name (caller frees). */
char *xn_cgroup_dir(const xn_cgroups *cg, const char *name);

/* Make group name (an existing one is kept as it is). */
int xn_cgroup_create(xn_cgroups *cg, const char *name, xn_error **err);
/* Move every thread of process pid into group name; threads it makes
 * later are born there. */
int xn_cgroup_attach(xn_cgroups *cg, const char *name, pid_t pid, xn_error **err);
/* Set the group's weight (1-65535) and cap (percent of one CPU, 0 for
 * none). */
int xn_cgroup_set_cpu(xn_cgroups *cg, const char *name, unsigned weight, unsigned cap,
		      xn_error **err);
/* Remove group name. A group that is not there is success; one that
 * still holds processes fails (errno EBUSY in the message). */
int xn_cgroup_remove(xn_cgroups *cg, const char *name, xn_error **err);
/* The names of the groups under base (a NULL-terminated vector, caller
 * frees with xn_strv_free). */
char **xn_cgroup_list(xn_cgroups *cg);

/* ---- pure helpers, exposed for the tests ---- */

/* Where the cpu controller is, from a /proc/self/mountinfo text: the
 * mount point of the v1 hierarchy with the cpu controller in *v1 and of
 * the cgroup2 mount in *v2 (each NULL when absent; caller frees). Which
 * one carries cpu when both exist is decided by the v2 mount's
 * cgroup.controllers: a controller lives in one hierarchy only. */
void xn_cgroup_mounts(const char *mountinfo, char **v1, char **v2);
/* Weight (1-65535, 256 default) as v1 cpu.shares (256 -> 1024). */
uint64_t xn_cgroup_v1_shares(unsigned weight);
/* Weight as v2 cpu.weight (256 -> 100, within 1-10000). */
uint64_t xn_cgroup_v2_weight(unsigned weight);
/* Cap (percent of one CPU) as a CFS quota per period_us; -1 for 0 (no
 * cap). */
int64_t xn_cgroup_quota_us(unsigned cap, uint64_t period_us);

#endif
