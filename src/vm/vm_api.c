/* vm_api.c: VM messages that change records only: clone,
 * the memory and vCPU setters; and VDI.destroy (vm.h). */
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
void xn_vm_snapshot_register(xn_api *api);

/* ---- memory and vCPUs -------------------------------------------------- */

static void set_fields(xn_call *c, const char *op, const char **fields, json_int_t *values,
		       size_t n)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	json_t *rec = xn_db_get(h->db, vm);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, rec, op, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	json_t *next = json_deep_copy(rec);
	for (size_t i = 0; i < n; i++)
		json_object_set_new(next, fields[i], json_integer(values[i]));
#define G(f) json_integer_value(json_object_get(next, f))
	json_int_t smin = G("memory_static_min"), dmin = G("memory_dynamic_min"),
		   dmax = G("memory_dynamic_max"), smax = G("memory_static_max");
	json_int_t vmax = G("VCPUs_max"), vstart = G("VCPUs_at_startup");
#undef G
	json_decref(next);
	for (size_t i = 0; i < n; i++) {
		if (values[i] < 0 || (strstr(fields[i], "VCPUs") && values[i] < 1)) {
			XN_AUTOFREE char *s = xn_asprintf("%lld", (long long)values[i]);
			xn_call_fail_code(c, "INVALID_VALUE", fields[i], s, NULL);
			return;
		}
	}
	if (!(smin <= dmin && dmin <= dmax && dmax <= smax) || smax < (16 << 20)) {
		xn_call_fail_code(c, "MEMORY_CONSTRAINT_VIOLATION",
				  "Memory limits must satisfy: 16 MiB <= static_max, "
				  "static_min <= dynamic_min <= dynamic_max <= static_max", NULL);
		return;
	}
	if (vstart > vmax || vmax > 64) {
		XN_AUTOFREE char *s = xn_asprintf("%lld", (long long)vstart);
		xn_call_fail_code(c, "INVALID_VALUE", "VCPUs_at_startup", s, NULL);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	for (size_t i = 0; i < n; i++)
		xn_changes_set(cs, vm, fields[i], json_integer(values[i]));
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

#define SETTER(fn, op, field)                                          \
	static void fn(xn_call *c)                                     \
	{                                                              \
		const char *f[] = {field};                             \
		json_int_t v[] = {xn_call_arg_int(c, 1)};              \
		set_fields(c, op, f, v, 1);                            \
	}
SETTER(set_static_max, "changing_static_range", "memory_static_max")
SETTER(set_static_min, "changing_static_range", "memory_static_min")
SETTER(set_dynamic_max, "changing_dynamic_range", "memory_dynamic_max")
SETTER(set_dynamic_min, "changing_dynamic_range", "memory_dynamic_min")
SETTER(set_vcpus_max, "changing_VCPUs", "VCPUs_max")
SETTER(set_vcpus_at_startup, "changing_VCPUs", "VCPUs_at_startup")
#undef SETTER

static void set_memory_limits(xn_call *c)
{
	const char *f[] = {"memory_static_min", "memory_static_max", "memory_dynamic_min",
			   "memory_dynamic_max"};
	json_int_t v[] = {xn_call_arg_int(c, 1), xn_call_arg_int(c, 2), xn_call_arg_int(c, 3),
			  xn_call_arg_int(c, 4)};
	set_fields(c, "changing_memory_limits", f, v, 4);
}

static void set_memory(xn_call *c)
{
	const char *f[] = {"memory_static_max", "memory_dynamic_max", "memory_dynamic_min"};
	json_int_t x = xn_call_arg_int(c, 1);
	json_int_t v[] = {x, x, x};
	set_fields(c, "changing_memory_limits", f, v, 3);
}

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
	{"VM.set_memory_static_max", set_static_max},
	{"VM.set_memory_static_min", set_static_min},
	{"VM.set_memory_dynamic_max", set_dynamic_max},
	{"VM.set_memory_dynamic_min", set_dynamic_min},
	{"VM.set_memory_limits", set_memory_limits},
	{"VM.set_memory", set_memory},
	{"VM.set_VCPUs_max", set_vcpus_max},
	{"VM.set_VCPUs_at_startup", set_vcpus_at_startup},
	{NULL, NULL},
};

void xn_vm_register(xn_api *api)
{
	xn_api_register(api, vm_record_methods);
	xn_api_register(api, xn_vm_lifecycle_methods);
	xn_api_register(api, xn_vm_vbd_methods);
	xn_api_register(api, xn_vm_vif_methods);
	xn_api_register(api, xn_vm_provision_methods);
	xn_vm_snapshot_register(api);
}
