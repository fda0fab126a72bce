/* ovf.h: an OVF descriptor (DMTF DSP0243, as VMware and VirtualBox
 * write it) read into what an import needs: the virtual system's name,
 * vCPUs, memory, its disks (the file in the package, the capacity) and
 * its NICs (the network name). Pure: no I/O; the caller reads the file.
 *
 * Sections and elements this reader does not know are skipped when they
 * say ovf:required="false"; one that is required (the attribute absent
 * or true) refuses the whole descriptor, as the standard asks, because
 * ignoring it could make a VM that is not what its author described. */
#ifndef XN_VM_OVF_H
#define XN_VM_OVF_H

#include <jansson.h>

#include "util/err.h"

/* Parse descriptor text into {"name", "vcpus", "memory" (bytes),
 * "disks": [{"file", "capacity" (bytes)}], "nics": [{"network"}]} (new
 * reference), or NULL with IMPORT_ERROR_GENERIC saying what is wrong. */
json_t *xn_ovf_parse(const char *xml, size_t len, xn_error **err);

#endif
