/* vm_api.c: VM messages that change records only: clone, provision,
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

/* ---- clone: linked clones of every disk, then one commit ------------- */

struct clone {
	xn_call *call;
	xn_host *h;
	char *src, *name;
	json_t *disks;   /* [ [src vdi ref, new uuid], ... ] */
	size_t next;
	xn_error *err;
};

static void clone_commit(struct clone *cl)
{
	xn_host *h = cl->h;
	json_t *src = xn_db_get(h->db, cl->src);
	xn_changes *cs = xn_changes_new(h->db);
	json_t *rec = json_deep_copy(src);
	static const char *reset[] = {"uuid", "VBDs", "VIFs", "consoles", "snapshots",
				      "children", "crash_dumps", "VTPMs", "VUSBs",
				      "current_operations", "allowed_operations", NULL};
	for (size_t i = 0; reset[i]; i++)
		json_object_del(rec, reset[i]);
	json_object_set_new(rec, "name_label", json_string(cl->name));
	json_object_set_new(rec, "is_default_template", json_false());
	json_object_set_new(rec, "power_state", json_string("Halted"));
	json_object_set_new(rec, "resident_on", json_string(XN_NULL_REF));
	json_object_set_new(rec, "suspend_VDI", json_string(XN_NULL_REF));
	json_object_set_new(rec, "guest_metrics", json_string(XN_NULL_REF));
	json_object_set_new(rec, "domid", json_integer(-1));
	json_object_del(json_object_get(rec, "other_config"), "xenia-builtin");
	const char *m = xn_changes_add(cs, xn_model_class("VM_metrics"), NULL, json_object());
	json_object_set_new(rec, "metrics", json_string(m));
	XN_AUTOFREE char *vm = xn_strdup(xn_changes_add(cs, xn_model_class("VM"), NULL, rec));
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(src, "VBDs"), i, v) {
		json_t *vbd = json_deep_copy(xn_db_get(h->db, json_string_value(v)));
		json_object_del(vbd, "uuid");
		json_object_set_new(vbd, "VM", json_string(vm));
		json_object_set_new(vbd, "currently_attached", json_false());
		const char *vdi = json_string_value(json_object_get(vbd, "VDI"));
		size_t j;
		json_t *pair;
		json_array_foreach(cl->disks, j, pair) {
			if (!xn_streq(json_string_value(json_array_get(pair, 0)), vdi))
				continue;
			json_t *nv = json_deep_copy(xn_db_get(h->db, vdi));
			const char *nu = json_string_value(json_array_get(pair, 1));
			json_object_set_new(nv, "uuid", json_string(nu));
			json_object_set_new(nv, "location", json_string(nu));
			json_object_set_new(nv, "read_only", json_false());
			json_object_set_new(nv, "VBDs", json_array());
			json_object_set_new(nv, "snapshots", json_array());
			json_object_set_new(nv, "sm_config", json_pack("{s:s}", "vhd-parent",
				xn_db_str(h->db, vdi, "uuid")));
			const char *nref = xn_changes_add(cs, xn_model_class("VDI"), NULL, nv);
			json_object_set_new(vbd, "VDI", json_string(nref));
		}
		xn_changes_add(cs, xn_model_class("VBD"), NULL, vbd);
	}
	xn_vm_refresh_allowed(cs, vm);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(cl->call, err);
	else
		xn_call_return(cl->call, json_string(vm));
}

static void clone_free(struct clone *cl)
{
	free(cl->src);
	free(cl->name);
	json_decref(cl->disks);
	free(cl);
}

static void clone_next(void *ud, xn_error *err)
{
	struct clone *cl = ud;
	xn_host *h = cl->h;
	if (err) {
		/* Remove the overlays made so far: nothing half-done stays. */
		for (size_t i = 0; i + 1 < cl->next; i++) {
			json_t *p = json_array_get(cl->disks, i);
			const char *sr = xn_db_str(h->db, json_string_value(json_array_get(p, 0)), "SR");
			xn_sr_ops_of(h, sr)->vdi_destroy(h, sr, json_string_value(json_array_get(p, 1)),
							 NULL);
		}
		xn_call_fail(cl->call, err);
		clone_free(cl);
		return;
	}
	if (cl->next == json_array_size(cl->disks)) {
		clone_commit(cl);
		clone_free(cl);
		return;
	}
	json_t *p = json_array_get(cl->disks, cl->next++);
	const char *vdi = json_string_value(json_array_get(p, 0));
	const char *sr = xn_db_str(h->db, vdi, "SR");
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops) {
		xn_error *e = NULL;
		xn_fail(&e, "SR_UNKNOWN_DRIVER", xn_db_str(h->db, sr, "type"), NULL);
		clone_next(cl, e);
		return;
	}
	ops->vdi_clone(h, sr, xn_db_str(h->db, vdi, "location"),
		       json_string_value(json_array_get(p, 1)), xn_db_int(h->db, vdi, "virtual_size"),
		       clone_next, cl);
}

static void vm_clone(xn_call *c)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, xn_db_get(h->db, vm), "clone", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	/* No control characters in labels, as VM.set_name_label. */
	const char *name = xn_call_arg_str(c, 1);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			xn_call_fail_code(c, "INVALID_VALUE", "new_name", name, NULL);
			return;
		}
	}
	struct clone *cl = xn_calloc(1, sizeof(*cl));
	cl->call = c;
	cl->h = h;
	cl->src = xn_strdup(vm);
	cl->name = xn_strdup(xn_call_arg_str(c, 1));
	cl->disks = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vm, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		const char *vdi = xn_db_str(h->db, vbd, "VDI");
		if (strcmp(xn_db_str(h->db, vbd, "type"), "Disk") != 0 || !xn_db_get(h->db, vdi))
			continue;
		XN_AUTOFREE char *nu = xn_uuid_new();
		json_array_append_new(cl->disks, json_pack("[s,s]", vdi, nu));
	}
	clone_next(cl, NULL);
}

static void vm_provision(xn_call *c)
{
	const char *vm = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, xn_db_get(c->host->db, vm), "provision", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	json_t *oc = xn_db_field(c->host->db, vm, "other_config");
	if (json_object_get(oc, "disks")) {
		xn_call_fail_code(c, "NOT_IMPLEMENTED", "VM.provision of other-config:disks", NULL);
		return;
	}
	xn_call_return(c, NULL);
}

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

/* ---- VDI.destroy ------------------------------------------------------- */

static void vdi_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *vdi = xn_call_arg_str(c, 0);
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vdi, "VBDs"), i, v) {
		const char *vm = xn_db_str(h->db, json_string_value(v), "VM");
		const char *ps = xn_db_str(h->db, vm, "power_state");
		if (strcmp(ps, "Halted") != 0) {
			xn_call_fail_code(c, "VDI_IN_USE", vdi, "destroy", NULL);
			return;
		}
	}
	const char *uuid = xn_db_str(h->db, vdi, "uuid");
	const char *k;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VDI")), k, v) {
		json_t *smc = json_object_get(v, "sm_config");
		if (xn_streq(json_string_value(json_object_get(smc, "vhd-parent")), uuid)) {
			/* A linked clone still reads through this image. */
			xn_call_fail_code(c, "VDI_IN_USE", vdi, "destroy", NULL);
			return;
		}
	}
	/* Record first, file second: a crash in between leaves a file no VDI
	 * claims (collected at the next start), never a VDI without a file. */
	XN_AUTOFREE char *sr = xn_strdup(xn_db_str(h->db, vdi, "SR"));
	XN_AUTOFREE char *location = xn_strdup(xn_db_str(h->db, vdi, "location"));
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	xn_error *err = NULL;
	xn_changes *cs = xn_changes_new(h->db);
	json_array_foreach(xn_db_field(h->db, vdi, "VBDs"), i, v)
		xn_changes_delete(cs, json_string_value(v));
	xn_changes_delete(cs, vdi);
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	if (ops && ops->vdi_destroy(h, sr, location, &err) < 0) {
		xn_warn("storage: %s (the file is collected at the next start)", err->message);
		xn_error_free(err);
	}
	xn_call_return(c, NULL);
}

/* ---- VDI.create: the record and its image, together ------------------- */

struct vdi_create {
	xn_call *call;
	json_t *rec;     /* the record to commit once the image exists */
	char *sr, *location;
};

static void vdi_created(void *ud, xn_error *err)
{
	struct vdi_create *v = ud;
	xn_host *h = v->call->host;
	if (!err) {
		xn_changes *cs = xn_changes_new(h->db);
		XN_AUTOFREE char *ref = xn_strdup(
			xn_changes_add(cs, xn_model_class("VDI"), NULL, json_incref(v->rec)));
		if (xn_db_commit(h->db, cs, &err) == 0) {
			xn_call_return(v->call, json_string(ref));
			v->call = NULL;
		} else {
			/* no record: the image goes too */
			xn_sr_ops_of(h, v->sr)->vdi_destroy(h, v->sr, v->location, NULL);
		}
	}
	if (v->call)
		xn_call_fail(v->call, err);
	json_decref(v->rec);
	free(v->sr);
	free(v->location);
	free(v);
}

/* VDI.create(args): a new empty thin image of virtual_size on args.SR. */
static void vdi_create(xn_call *c)
{
	xn_host *h = c->host;
	json_t *args = xn_call_arg(c, 0);
	const char *sr = json_string_value(json_object_get(args, "SR"));
	if (!sr || xn_db_class_of(h->db, sr) != xn_model_class("SR")) {
		xn_call_fail_code(c, "HANDLE_INVALID", "SR", sr ? sr : "", NULL);
		return;
	}
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops) {
		xn_call_fail_code(c, "SR_UNKNOWN_DRIVER", xn_db_str(h->db, sr, "type"), NULL);
		return;
	}
	const xn_class *vc = xn_model_class("VDI");
	json_t *rec = json_object();
	for (size_t i = 0; i < vc->nfields; i++) {
		const xn_field *f = &vc->fields[i];
		json_t *given = f->qualifier == XN_RO_RUNTIME ? NULL : json_object_get(args, f->name);
		if (!given)
			continue;
		xn_error *err = NULL;
		json_t *ok = xn_value_check(f->type, given, f->name, &err);
		if (!ok) {
			json_decref(rec);
			xn_call_fail(c, err);
			return;
		}
		json_object_set_new(rec, f->name, ok);
	}
	json_int_t size = json_integer_value(json_object_get(rec, "virtual_size"));
	if (size <= 0 || size > (json_int_t)64 << 40) {
		json_decref(rec);
		XN_AUTOFREE char *s = xn_asprintf("%lld", (long long)size);
		xn_call_fail_code(c, "INVALID_VALUE", "virtual_size", s, NULL);
		return;
	}
	/* qcow2 sizes are whole sectors */
	size = (size + 511) / 512 * 512;
	char *uuid = xn_uuid_new();
	json_object_set_new(rec, "uuid", json_string(uuid));
	json_object_set_new(rec, "location", json_string(uuid));
	json_object_set_new(rec, "virtual_size", json_integer(size));
	json_object_set_new(rec, "managed", json_true());
	struct vdi_create *v = xn_calloc(1, sizeof(*v));
	v->call = c;
	v->rec = rec;
	v->sr = xn_strdup(sr);
	v->location = uuid;
	ops->vdi_create(h, sr, uuid, size, vdi_created, v);
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
	char *end = NULL;
	long n = dev ? strtol(dev, &end, 10) : -1;
	if (!dev || !*dev || *end || n < 0 || n > 15) {
		xn_call_fail_code(c, "INVALID_VALUE", "userdevice", dev ? dev : "", NULL);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vm, "VBDs"), i, v) {
		if (xn_streq(xn_db_str(h->db, json_string_value(v), "userdevice"), dev)) {
			xn_call_fail_code(c, "DEVICE_ALREADY_EXISTS", dev, NULL);
			return;
		}
	}
	xn_accessor_call(c, xn_model_class("VBD"), "create");
}

static const xn_api_method vm_record_methods[] = {
	{"VBD.create", vbd_create},
	{"VDI.resize", vdi_resize},
	{"VDI.resize_online", vdi_resize},
	{"VDI.create", vdi_create},
	{"VM.clone", vm_clone},
	{"VM.provision", vm_provision},
	{"VM.set_memory_static_max", set_static_max},
	{"VM.set_memory_static_min", set_static_min},
	{"VM.set_memory_dynamic_max", set_dynamic_max},
	{"VM.set_memory_dynamic_min", set_dynamic_min},
	{"VM.set_memory_limits", set_memory_limits},
	{"VM.set_memory", set_memory},
	{"VM.set_VCPUs_max", set_vcpus_max},
	{"VM.set_VCPUs_at_startup", set_vcpus_at_startup},
	{"VDI.destroy", vdi_destroy},
	{NULL, NULL},
};

void xn_vm_register(xn_api *api)
{
	xn_api_register(api, vm_record_methods);
	xn_api_register(api, xn_vm_lifecycle_methods);
	xn_api_register(api, xn_vm_vbd_methods);
}
