/* vm_api.c: VM messages that change records only (VBD.create, VDI
 * resizing), and the registration of every VM message table (vm.h);
 * memory and vCPU setters are in vm_memory.c and vm_resources.c. */
#include "vm/vm_runtime.h"

#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/uuid.h"

extern const xn_api_method xn_vm_lifecycle_methods[];
extern const xn_api_method xn_vm_vbd_methods[];
extern const xn_api_method xn_vm_vif_methods[];
extern const xn_api_method xn_vm_provision_methods[];
extern const xn_api_method xn_vm_memory_methods[];
extern const xn_api_method xn_vm_resources_methods[];
void xn_vm_snapshot_register(xn_api *api);

/* ---- VDI.resize / VDI.resize_online ------------------------------------ *
 * Grow a disk (shrinking would cut the guest's file systems: refused).
 * A disk a running VM uses grows through QMP block_resize on the VM's
 * drive node, so the guest sees the new size at once; otherwise
 * qemu-img resizes the image. */

struct resize {
	xn_call *call;
	char *vdi;
	json_int_t size;
};

static void resize_done(struct resize *r, const xn_error *err)
{
	if (err) {
		xn_error *e = NULL;
		xn_fail(&e, "SR_BACKEND_FAILURE", "resize", err->message, "", NULL);
		xn_call_fail(r->call, e);
	} else {
		xn_error *e = NULL;
		if (xn_db_set(r->call->host->db, r->vdi, "virtual_size", json_integer(r->size), &e) < 0)
			xn_call_fail(r->call, e);
		else
			xn_call_return(r->call, NULL);
	}
	free(r->vdi);
	free(r);
}

static void resized_online(void *ud, json_t *ret, const xn_error *err)
{
	(void)ret;
	resize_done(ud, err);
}

static void resized_offline(void *ud, int status, const char *output)
{
	xn_error *err = NULL;
	if (status != 0)
		xn_fail_internal(&err, "qemu-img resize: %s", output);
	resize_done(ud, err);
	xn_error_free(err);
}

/* The running domain and userdevice using vdi, if any. */
static struct dom *vdi_user(xn_host *h, const char *vdi, const char **userdevice)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vdi, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		struct dom *d = xn_dom_find(h, xn_db_str(h->db, vbd, "VM"));
		if (d) {
			*userdevice = xn_db_str(h->db, vbd, "userdevice");
			return d;
		}
	}
	return NULL;
}

/* The disk's top node now (a snapshot may have put an overlay on it). */
static void resize_node(void *ud, const char *node, const xn_error *err)
{
	struct resize *r = ud;
	const char *userdevice = NULL;
	struct dom *d = vdi_user(r->call->host, r->vdi, &userdevice);
	if (err || !d) {
		xn_error *e = NULL;
		if (!err)
			xn_fail_internal(&e, "the VM stopped");
		resize_done(r, err ? err : e);
		xn_error_free(e);
		return;
	}
	xn_dom_qmp(d, "block_resize", json_pack("{s:s,s:I}", "node-name", node, "size", r->size),
		   resized_online, r);
}

static void vdi_resize(xn_call *c)
{
	xn_host *h = c->host;
	const char *vdi = xn_call_arg_str(c, 0);
	json_int_t size = xn_call_arg_int(c, 1);
	json_int_t cur = xn_db_int(h->db, vdi, "virtual_size");
	if (size < cur || size > (json_int_t)64 << 40) {
		XN_AUTOFREE char *s = xn_asprintf("%lld", (long long)size);
		xn_call_fail_code(c, "INVALID_VALUE", "size", s, NULL);
		return;
	}
	if (xn_db_bool(h->db, vdi, "read_only") ||
	    strcmp(xn_db_str(h->db, vdi, "type"), "suspend") == 0) {
		xn_call_fail_code(c, "VDI_READONLY", vdi, NULL);
		return;
	}
	struct resize *r = xn_calloc(1, sizeof(*r));
	r->call = c;
	r->vdi = xn_strdup(vdi);
	r->size = (size + 511) / 512 * 512;
	const char *userdevice = NULL;
	struct dom *d = vdi_user(h, vdi, &userdevice);
	if (d) {
		xn_dom_disk_node(d, userdevice, resize_node, r);
		return;
	}
	XN_AUTOFREE char *path = xn_vdi_path(h, vdi);
	XN_AUTOFREE char *sz = xn_asprintf("%lld", (long long)r->size);
	char *argv[] = {"qemu-img", "resize", "-q", "-f", "qcow2", path, sz, NULL};
	xn_error *err = NULL;
	if (!path || xn_run(h->loop, argv, resized_offline, r, &err) < 0) {
		if (!err)
			xn_fail_internal(&err, "the disk has no image");
		free(r->vdi);
		free(r);
		xn_call_fail(c, err);
	}
}

/* VBD.create: the datamodel's constructor, after the checks that keep a
 * VM startable: the VM and disk exist, the device number is free. */
static void vbd_create(xn_call *c)
{
	xn_host *h = c->host;
	json_t *args = xn_call_arg(c, 0);
	const char *vm = json_string_value(json_object_get(args, "VM"));
	const char *vdi = json_string_value(json_object_get(args, "VDI"));
	const char *dev = json_string_value(json_object_get(args, "userdevice"));
	if (!vm || xn_db_class_of(h->db, vm) != xn_model_class("VM")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "VM", vm ? vm : "", NULL);
		return;
	}
	if (!xn_ref_is_null(vdi) && xn_db_class_of(h->db, vdi) != xn_model_class("VDI")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "VDI", vdi, NULL);
		return;
	}
	xn_error *err = NULL;
	if (xn_vm_device_free(h, vm, "VBDs", "userdevice", dev, XN_VM_MAX_USERDEVICE, "userdevice",
			      &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_accessor_call(c, xn_model_class("VBD"), "create");
}

static const xn_api_method vm_record_methods[] = {
	{"VBD.create", vbd_create},
	{"VDI.resize", vdi_resize},
	{"VDI.resize_online", vdi_resize},
	{NULL, NULL},
};

void xn_vm_register(xn_api *api)
{
	xn_api_register(api, vm_record_methods);
	xn_api_register(api, xn_vm_lifecycle_methods);
	xn_api_register(api, xn_vm_vbd_methods);
	xn_api_register(api, xn_vm_vif_methods);
	xn_api_register(api, xn_vm_provision_methods);
	xn_api_register(api, xn_vm_memory_methods);
	xn_api_register(api, xn_vm_resources_methods);
	xn_vm_snapshot_register(api);
}
