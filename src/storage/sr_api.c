/* sr_api.c: SR and PBD messages: SR.create, SR.scan, SR.update,
 * SR.forget, SR.destroy, PBD.plug, PBD.unplug (storage.h). A new SR is
 * attached (its driver reaches it) before any record of it exists, so a
 * bad device-config or an unreachable server leaves nothing behind. */
#include "storage/storage.h"

#include <string.h>

#include "util/log.h"
#include "util/uuid.h"


static int attach_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	return xn_sr_ops_by_type(c->type)->attach(c, err);
}

/* ---- SR.create ------------------------------------------------------------ */

struct create {
	xn_call *call;
	json_t *sr, *pbd;   /* records to commit */
};

static void create_attached(void *ud, xn_error *err)
{
	struct create *cr = ud;
	xn_host *h = cr->call->host;
	if (!err) {
		xn_changes *cs = xn_changes_new(h->db);
		XN_AUTOFREE char *sr = xn_strdup(
			xn_changes_add(cs, xn_model_class("SR"), NULL, json_incref(cr->sr)));
		json_object_set_new(cr->pbd, "SR", json_string(sr));
		xn_changes_add(cs, xn_model_class("PBD"), NULL, json_incref(cr->pbd));
		if (xn_db_commit(h->db, cs, &err) == 0) {
			xn_call_return(cr->call, json_string(sr));
			cr->call = NULL;
			xn_sr_scan(h, sr, NULL, NULL);
		}
	}
	if (cr->call)
		xn_call_fail(cr->call, err);
	json_decref(cr->sr);
	json_decref(cr->pbd);
	free(cr);
}

static void sr_create(xn_call *c)
{
	xn_host *h = c->host;
	/* arguments after the session: host, device_config, physical_size,
	 * name_label, name_description, type, content_type, shared, sm_config */
	const char *host = xn_call_arg_str(c, 0);
	json_t *dc = xn_call_arg(c, 1);
	const char *type = xn_call_arg_str(c, 5);
	const xn_sr_ops *ops = xn_sr_ops_by_type(type);
	if (!ops) {
		xn_call_fail_code(c, "SR_UNKNOWN_DRIVER", type, NULL);
		return;
	}
	if (!xn_streq(host, h->host_ref)) {
		xn_call_fail_code(c, "HANDLE_INVALID", "host", host, NULL);
		return;
	}
	const char *content = xn_call_arg_str(c, 6);
	bool shared = xn_call_arg_bool(c, 7);
	if (shared && !ops->shared && strcmp(type, "iso") != 0) {
		xn_call_fail_code(c, "SR_BACKEND_FAILURE", "", "this SR type cannot be shared",
				  type, NULL);
		return;
	}
	XN_AUTOFREE char *uuid = xn_uuid_new();
	json_t *dcfg = json_deep_copy(dc);
	if (strcmp(type, "file") == 0 && !json_object_get(dcfg, "path")) {
		XN_AUTOFREE char *dir = xn_asprintf("%s/sr/%s", h->data_dir, uuid);
		json_object_set_new(dcfg, "path", json_string(dir));
	}
	xn_sr_conf *conf = xn_sr_conf_new(h, type, uuid, dcfg);
	struct create *cr = xn_calloc(1, sizeof(*cr));
	cr->call = c;
	cr->sr = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:O}", "uuid", uuid, "name_label",
			   xn_call_arg_str(c, 3), "name_description", xn_call_arg_str(c, 4), "type",
			   type, "content_type", content[0] ? content : ops->content_type, "shared",
			   shared || ops->shared, "sm_config", xn_call_arg(c, 8));
	cr->pbd = json_pack("{s:s,s:o,s:b}", "host", h->host_ref, "device_config", dcfg,
			    "currently_attached", 1);
	xn_sr_work_on(h, conf, attach_work, cr, create_attached);
}

/* ---- SR.scan: the records follow the files -------------------------------- */

struct scan {
	xn_host *h;
	char *sr;
	json_t *files, *infos;   /* infos: file -> qemu-img facts (iso: size) */
	xn_storage_done done;
	void *ud;
};

static int scan_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	struct scan *s = ud;
	return xn_sr_ops_by_type(c->type)->list(c, &s->files, err);
}

static bool iso_name(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && (strcasecmp(name + n - 4, ".iso") == 0 || strcasecmp(name + n - 4, ".img") == 0);
}

static void scan_listed(void *ud, xn_error *err)
{
	struct scan *s = ud;
	xn_host *h = s->h;
	if (!err && xn_db_get(h->db, s->sr)) {
		bool iso = xn_sr_ops_of(h, s->sr)->read_only;
		xn_changes *cs = xn_changes_new(h->db);
		json_t *known = json_object();
		size_t i;
		json_t *v;
		json_array_foreach(xn_db_field(h->db, s->sr, "VDIs"), i, v) {
			const char *vdi = json_string_value(v);
			const char *loc = xn_db_str(h->db, vdi, "location");
			XN_AUTOFREE char *file = xn_location_file(loc);
			json_t *f = json_object_get(s->files, file);
			json_object_set_new(known, file, json_true());
			if (!f) {
				/* its file is gone: forget it, unless an operation
				 * is making it or a running VM has it open */
				if (!xn_storage_held(s->sr, loc) &&
				    json_array_size(xn_db_field(h->db, vdi, "VBDs")) == 0)
					xn_changes_delete(cs, vdi);
				continue;
			}
			json_t *size = json_object_get(f, "size");
			xn_changes_set(cs, vdi, "physical_utilisation", json_incref(size));
			if (iso)
				xn_changes_set(cs, vdi, "virtual_size", json_incref(size));
		}
		const char *name;
		json_object_foreach(s->files, name, v) {
			if (!iso || !iso_name(name) || json_object_get(known, name))
				continue;
			json_t *size = json_object_get(v, "size");
			xn_changes_add(cs, xn_model_class("VDI"), NULL,
				       json_pack("{s:s,s:s,s:s,s:s,s:O,s:O,s:s,s:b,s:b,s:b}",
						 "name_label", name, "name_description", "",
						 "SR", s->sr, "location", name, "virtual_size",
						 size, "physical_utilisation", size, "type", "user",
						 "managed", 1, "read_only", 1, "sharable", 1));
		}
		json_decref(known);
		xn_db_commit(h->db, cs, &err);
	}
	if (s->done)
		s->done(s->ud, err);
	else
		xn_error_free(err);
	if (xn_db_get(h->db, s->sr))
		xn_sr_update_sizes(h, s->sr);
	json_decref(s->files);
	free(s->sr);
	free(s);
}

void xn_sr_scan(xn_host *h, const char *sr_ref, xn_storage_done done, void *ud)
{
	struct scan *s = xn_calloc(1, sizeof(*s));
	s->h = h;
	s->sr = xn_strdup(sr_ref);
	s->done = done;
	s->ud = ud;
	xn_sr_work(h, sr_ref, scan_work, s, scan_listed);
}

static void call_done(void *ud, xn_error *err)
{
	if (err)
		xn_call_fail(ud, err);
	else
		xn_call_return(ud, NULL);
}

static void sr_scan(xn_call *c)
{
	xn_sr_scan(c->host, xn_call_arg_str(c, 0), call_done, c);
}

static void sr_update(xn_call *c)
{
	xn_sr_update_sizes(c->host, xn_call_arg_str(c, 0));
	xn_call_return(c, NULL);
}

/* ---- forget, destroy -------------------------------------------------------- */

static int check_detachable(xn_host *h, const char *sr, bool need_unplugged, xn_error **err)
{
	if (xn_streq(sr, h->local_sr_ref))
		return xn_fail(err, "SR_OPERATION_NOT_SUPPORTED", sr, NULL);
	size_t i;
	json_t *v;
	if (need_unplugged)
		json_array_foreach(xn_db_field(h->db, sr, "PBDs"), i, v)
			if (xn_db_bool(h->db, json_string_value(v), "currently_attached"))
				return xn_fail(err, "SR_HAS_PBD", sr, NULL);
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, v) {
		size_t j;
		json_t *b;
		json_array_foreach(xn_db_field(h->db, json_string_value(v), "VBDs"), j, b) {
			const char *vm = xn_db_str(h->db, json_string_value(b), "VM");
			if (!xn_streq(xn_db_str(h->db, vm, "power_state"), "Halted"))
				return xn_fail(err, "VDI_IN_USE", json_string_value(v), "forget",
					       NULL);
		}
	}
	return 0;
}

/* Delete the SR, its PBDs, its VDIs and their VBDs in cs. */
static void forget_all(xn_host *h, xn_changes *cs, const char *sr)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, v) {
		size_t j;
		json_t *b;
		json_array_foreach(xn_db_field(h->db, json_string_value(v), "VBDs"), j, b)
			xn_changes_delete(cs, json_string_value(b));
		xn_changes_delete(cs, json_string_value(v));
	}
	json_array_foreach(xn_db_field(h->db, sr, "PBDs"), i, v)
		xn_changes_delete(cs, json_string_value(v));
	xn_changes_delete(cs, sr);
}

static void sr_forget(xn_call *c)
{
	xn_host *h = c->host;
	const char *sr = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (check_detachable(h, sr, true, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	forget_all(h, cs, sr);
	call_done(c, xn_db_commit(h->db, cs, &err) < 0 ? err : NULL);
}

struct destroy {
	xn_call *call;
	json_t *files;
};

static int destroy_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	struct destroy *d = ud;
	const xn_sr_ops *ops = xn_sr_ops_by_type(c->type);
	size_t i;
	json_t *v;
	json_array_foreach(d->files, i, v)
		if (ops->remove(c, json_string_value(v), err) < 0)
			return -1;
	if (c->dir && strcmp(c->type, "file") == 0)
		rmdir(c->dir);
	return 0;
}

static void destroyed(void *ud, xn_error *err)
{
	struct destroy *d = ud;
	xn_call *c = d->call;
	xn_host *h = c->host;
	const char *sr = xn_call_arg_str(c, 0);
	if (!err && xn_db_get(h->db, sr)) {
		xn_changes *cs = xn_changes_new(h->db);
		forget_all(h, cs, sr);
		xn_db_commit(h->db, cs, &err);
	}
	call_done(c, err);
	json_decref(d->files);
	free(d);
}

/* SR.destroy: the SR's disks go, then its records. The PBD must be
 * plugged (the driver has to reach the files), unlike for forget. */
static void sr_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *sr = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (check_detachable(h, sr, false, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	struct destroy *d = xn_calloc(1, sizeof(*d));
	d->call = c;
	d->files = json_array();
	if (!xn_sr_ops_of(h, sr)->read_only) {
		size_t i;
		json_t *v;
		json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, v)
			json_array_append_new(d->files, json_string_nocheck(xn_location_file(
				xn_db_str(h->db, json_string_value(v), "location"))));
	}
	xn_sr_work(h, sr, destroy_work, d, destroyed);
}

/* ---- PBDs ------------------------------------------------------------------- */

struct plug {
	xn_host *h;
	char *pbd;
	xn_call *call;
};

static void plugged(void *ud, xn_error *err)
{
	struct plug *p = ud;
	xn_host *h = p->h;
	if (xn_db_get(h->db, p->pbd)) {
		xn_error *e = NULL;
		if (xn_db_set(h->db, p->pbd, "currently_attached", json_boolean(!err), &e) < 0)
			xn_error_free(e);
	}
	if (err)
		xn_warn("storage: cannot attach SR %s: %s",
			xn_db_str(h->db, xn_db_str(h->db, p->pbd, "SR"), "name_label"),
			err->message);
	if (p->call)
		call_done(p->call, err);
	else
		xn_error_free(err);
	free(p->pbd);
	free(p);
}

static void plug(xn_host *h, const char *pbd, xn_call *c)
{
	struct plug *p = xn_calloc(1, sizeof(*p));
	p->h = h;
	p->pbd = xn_strdup(pbd);
	p->call = c;
	xn_sr_work(h, xn_db_str(h->db, pbd, "SR"), attach_work, p, plugged);
}

void xn_sr_plug_all(xn_host *h, const char *sr_ref)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, sr_ref, "PBDs"), i, v) {
		const char *pbd = json_string_value(v);
		if (xn_streq(xn_db_str(h->db, pbd, "host"), h->host_ref) &&
		    xn_db_bool(h->db, pbd, "currently_attached"))
			plug(h, pbd, NULL);
	}
	xn_sr_gc_kick(h, sr_ref);
}

static void pbd_plug(xn_call *c)
{
	plug(c->host, xn_call_arg_str(c, 0), c);
}

static void pbd_unplug(xn_call *c)
{
	xn_host *h = c->host;
	const char *pbd = xn_call_arg_str(c, 0);
	const char *sr = xn_db_str(h->db, pbd, "SR");
	xn_error *err = NULL;
	if (check_detachable(h, sr, false, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	call_done(c, xn_db_set(h->db, pbd, "currently_attached", json_false(), &err) < 0 ? err
											   : NULL);
}

static const xn_api_method sr_methods[] = {
	{"SR.create", sr_create},
	{"SR.scan", sr_scan},
	{"SR.update", sr_update},
	{"SR.forget", sr_forget},
	{"SR.destroy", sr_destroy},
	{"PBD.plug", pbd_plug},
	{"PBD.unplug", pbd_unplug},
	{NULL, NULL},
};

void xn_storage_register(xn_api *api)
{
	xn_api_register(api, sr_methods);
	xn_vdi_register(api);
}
