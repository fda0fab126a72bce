/* vdi_api.c: the VDI messages that make or remove images: VDI.create,
 * VDI.destroy, VDI.clone, VDI.snapshot, VDI.copy (storage.h). Each
 * creates files first and records them in one commit afterwards; a
 * removal forgets the record first and the file after (vdi.c). */
#include "storage/storage.h"

#include <string.h>

#include "util/log.h"
#include "util/uuid.h"

/* The record fields of args a caller may set (VDI.create's argument). */
static json_t *settable_fields(json_t *args, xn_error **err)
{
	const xn_class *vc = xn_model_class("VDI");
	json_t *rec = json_object();
	for (size_t i = 0; i < vc->nfields; i++) {
		const xn_field *f = &vc->fields[i];
		json_t *given = f->qualifier == XN_RO_RUNTIME ? NULL : json_object_get(args, f->name);
		if (!given)
			continue;
		json_t *ok = xn_value_check(f->type, given, f->name, err);
		if (!ok) {
			json_decref(rec);
			return NULL;
		}
		json_object_set_new(rec, f->name, ok);
	}
	return rec;
}

/* SR_FULL when sr has less than need bytes free; the SR's last known
 * physical figures decide (refreshed after every change). */
static int check_space(xn_host *h, const char *sr, json_int_t need, xn_error **err)
{
	json_int_t size = xn_db_int(h->db, sr, "physical_size");
	json_int_t used = xn_db_int(h->db, sr, "physical_utilisation");
	if (size > 0 && need > size - used) {
		XN_AUTOFREE char *a = xn_asprintf("%lld", (long long)need);
		XN_AUTOFREE char *b = xn_asprintf("%lld", (long long)(size - used));
		return xn_fail(err, "SR_FULL", a, b, NULL);
	}
	return 0;
}

/* ---- VDI.create ---------------------------------------------------------- */

struct create {
	xn_call *call;
	json_t *rec;
	char *sr, *location;
};

static void created(void *ud, xn_error *err)
{
	struct create *v = ud;
	xn_host *h = v->call->host;
	if (!err) {
		xn_changes *cs = xn_changes_new(h->db);
		XN_AUTOFREE char *ref = xn_strdup(
			xn_changes_add(cs, xn_model_class("VDI"), NULL, json_incref(v->rec)));
		if (xn_db_commit(h->db, cs, &err) == 0) {
			xn_call_return(v->call, json_string(ref));
			v->call = NULL;
		} else {
			xn_image_remove(h, v->sr, v->location);
		}
	}
	if (v->call)
		xn_call_fail(v->call, err);
	xn_storage_release(h, v->sr, v->location);
	xn_sr_update_sizes(h, v->sr);
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
	if (ops->read_only) {
		xn_call_fail_code(c, "SR_OPERATION_NOT_SUPPORTED", sr, NULL);
		return;
	}
	xn_error *err = NULL;
	json_t *rec = settable_fields(args, &err);
	if (!rec) {
		xn_call_fail(c, err);
		return;
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
	json_object_del(json_object_get(rec, "sm_config"), "xenia-parent");
	struct create *v = xn_calloc(1, sizeof(*v));
	v->call = c;
	v->rec = rec;
	v->sr = xn_strdup(sr);
	v->location = uuid;
	xn_storage_hold(h, sr, uuid);
	xn_image_create(h, sr, uuid, size, created, v);
}

/* ---- VDI.destroy ---------------------------------------------------------- */

bool xn_vdi_forget(xn_host *h, xn_changes *cs, const char *vdi)
{
	if (xn_vdi_children(h, vdi, NULL) > 0) {
		json_t *rec = xn_changes_edit(cs, vdi);
		json_object_set_new(rec, "name_label", json_string("base copy"));
		json_object_set_new(rec, "managed", json_false());
		json_object_set_new(rec, "read_only", json_true());
		json_object_set_new(rec, "is_a_snapshot", json_false());
		json_object_set_new(rec, "snapshot_of", json_string(XN_NULL_REF));
		return false;
	}
	xn_changes_delete(cs, vdi);
	return true;
}

/* Whether vdi may go: no VM that is not halted has it, it is managed. */
static int destroy_check(xn_host *h, const char *vdi, xn_error **err)
{
	if (!xn_db_get(h->db, vdi))
		return xn_fail(err, "HANDLE_INVALID", "VDI", vdi, NULL);
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vdi, "VBDs"), i, v) {
		const char *vm = xn_db_str(h->db, json_string_value(v), "VM");
		if (!xn_streq(xn_db_str(h->db, vm, "power_state"), "Halted"))
			return xn_fail(err, "VDI_IN_USE", vdi, "destroy", NULL);
	}
	if (!xn_db_bool(h->db, vdi, "managed"))
		return xn_fail(err, "VDI_IN_USE", vdi, "destroy", NULL);
	return 0;
}

static void destroy_now(xn_call *c, const char *vdi)
{
	xn_host *h = c->host;
	xn_error *err = NULL;
	if (destroy_check(h, vdi, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	XN_AUTOFREE char *sr = xn_strdup(xn_db_str(h->db, vdi, "SR"));
	XN_AUTOFREE char *location = xn_strdup(xn_db_str(h->db, vdi, "location"));
	xn_changes *cs = xn_changes_new(h->db);
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vdi, "VBDs"), i, v)
		xn_changes_delete(cs, json_string_value(v));
	bool gone = xn_vdi_forget(h, cs, vdi);
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	if (gone)
		xn_image_remove(h, sr, location);
	xn_sr_gc_kick(h, sr);
	xn_call_return(c, NULL);
}

struct destroy {
	xn_call *call;
	char *vdi;
	json_t *key;
};

/* The toolstack's lock is ours: no other host has the disk open. */
static void destroy_locked(void *ud, xn_error *err)
{
	struct destroy *d = ud;
	xn_host *h = d->call->host;
	if (err)
		xn_call_fail(d->call, err);
	else
		destroy_now(d->call, d->vdi);
	if (!err)
		xn_vdi_unlock(h, d->key);
	json_decref(d->key);
	free(d->vdi);
	free(d);
}

static void vdi_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *vdi = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (destroy_check(h, vdi, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	/* on a shared SR another host may be using it: its lock says so */
	json_t *key = xn_vdi_lock_key(h, vdi, NULL);
	if (!key) {
		destroy_now(c, vdi);
		return;
	}
	struct destroy *d = xn_calloc(1, sizeof(*d));
	*d = (struct destroy){.call = c, .vdi = xn_strdup(vdi), .key = key};
	xn_vdi_lock(h, key, destroy_locked, d);
}

/* ---- VDI.clone, VDI.snapshot --------------------------------------------- */

struct fork_call {
	xn_call *call;
	xn_vdi_fork *fork;
	json_t *fields;
};

static void fork_call_end(struct fork_call *fc, xn_error *err)
{
	if (err)
		xn_call_fail(fc->call, err);
	else
		xn_call_return(fc->call, json_string(xn_vdi_fork_ref(fc->fork)));
	xn_vdi_fork_free(fc->fork);
	json_decref(fc->fields);
	free(fc);
}

static void fork_switched(void *ud, xn_error *err)
{
	fork_call_end(ud, err);
}

static void fork_prepared(void *ud, xn_error *err)
{
	struct fork_call *fc = ud;
	xn_host *h = fc->call->host;
	if (err) {
		fork_call_end(fc, err);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	xn_vdi_fork_apply(fc->fork, cs, fc->fields);
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_vdi_fork_abort(fc->fork);
		fork_call_end(fc, err);
		return;
	}
	xn_vdi_fork_switch(fc->fork, fork_switched, fc);
}

static void vdi_fork(xn_call *c, bool snapshot)
{
	xn_host *h = c->host;
	const char *vdi = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	xn_vdi_fork *f = xn_vdi_fork_new(h, vdi, snapshot, &err);
	if (!f) {
		xn_call_fail(c, err);
		return;
	}
	struct fork_call *fc = xn_calloc(1, sizeof(*fc));
	fc->call = c;
	fc->fork = f;
	fc->fields = json_object();
	xn_vdi_fork_prepare(f, fork_prepared, fc);
}

static void vdi_clone(xn_call *c)
{
	vdi_fork(c, false);
}

static void vdi_snapshot(xn_call *c)
{
	vdi_fork(c, true);
}

/* ---- VDI.copy: a full, independent copy, also to another SR -------------- */

struct copy {
	xn_call *call;
	char *src, *sr, *location;
};

static void copied(void *ud, xn_error *err)
{
	struct copy *cp = ud;
	xn_host *h = cp->call->host;
	if (!err && !xn_db_get(h->db, cp->src))
		xn_fail(&err, "HANDLE_INVALID", "VDI", cp->src, NULL);
	if (!err) {
		json_t *rec = xn_vdi_record_copy(h, cp->src, cp->sr, cp->location);
		json_object_set_new(rec, "type", json_string(xn_streq(json_string_value(
			json_object_get(rec, "type")), "suspend") ? "suspend" : "user"));
		xn_changes *cs = xn_changes_new(h->db);
		XN_AUTOFREE char *ref =
			xn_strdup(xn_changes_add(cs, xn_model_class("VDI"), NULL, rec));
		if (xn_db_commit(h->db, cs, &err) == 0)
			xn_call_return(cp->call, json_string(ref));
	}
	if (err) {
		xn_image_remove(h, cp->sr, cp->location);
		xn_call_fail(cp->call, err);
	}
	xn_storage_release(h, cp->sr, cp->location);
	xn_sr_update_sizes(h, cp->sr);
	free(cp->src);
	free(cp->sr);
	free(cp->location);
	free(cp);
}

/* Start copying vdi to a new image on sr; done gets the new VDI ref as
 * the call's result. */
static void vdi_copy(xn_call *c)
{
	xn_host *h = c->host;
	const char *vdi = xn_call_arg_str(c, 0);
	const char *sr = xn_call_arg_str(c, 1);
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops || ops->read_only) {
		xn_call_fail_code(c, "SR_OPERATION_NOT_SUPPORTED", sr, NULL);
		return;
	}
	xn_error *err = NULL;
	if (check_space(h, sr, xn_db_int(h->db, vdi, "physical_utilisation"), &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	struct copy *cp = xn_calloc(1, sizeof(*cp));
	cp->call = c;
	cp->src = xn_strdup(vdi);
	cp->sr = xn_strdup(sr);
	cp->location = xn_uuid_new();
	xn_storage_hold(h, sr, cp->location);
	xn_image_copy(h, vdi, sr, cp->location, copied, cp);
}

static const xn_api_method vdi_methods[] = {
	{"VDI.create", vdi_create},
	{"VDI.destroy", vdi_destroy},
	{"VDI.clone", vdi_clone},
	{"VDI.snapshot", vdi_snapshot},
	{"VDI.copy", vdi_copy},
	{NULL, NULL},
};

void xn_vdi_register(xn_api *api)
{
	xn_api_register(api, vdi_methods);
}
