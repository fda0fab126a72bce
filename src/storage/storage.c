/* storage.c: the SR registry and driver plumbing (configs, blocking
 * driver calls on the thread pool), the local SR, sizes, VDI paths and
 * start-up imports (storage.h). */
#include "storage/storage.h"

#include <string.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/uuid.h"

static const xn_sr_ops *drivers[] = {&xn_sr_file_ops, &xn_sr_iso_ops, &xn_sr_nfs_ops};

const xn_sr_ops *xn_sr_ops_by_type(const char *type)
{
	for (size_t i = 0; type && i < XN_ARRAY_LEN(drivers); i++)
		if (strcmp(drivers[i]->type, type) == 0)
			return drivers[i];
	return NULL;
}

const xn_sr_ops *xn_sr_ops_of(xn_host *h, const char *sr_ref)
{
	return xn_sr_ops_by_type(xn_db_str(h->db, sr_ref, "type"));
}

/* The device_config of this host's PBD for sr_ref (borrowed), or NULL. */
static json_t *pbd_config(xn_host *h, const char *sr_ref)
{
	const char *pbd = xn_db_member_where(h->db, sr_ref, "PBDs", "host", h->host_ref);
	return pbd ? xn_db_field(h->db, pbd, "device_config") : NULL;
}

xn_sr_conf *xn_sr_conf_new(xn_host *h, const char *type, const char *uuid,
			   json_t *device_config)
{
	xn_sr_conf *c = xn_calloc(1, sizeof(*c));
	c->ref = xn_strdup("");
	c->uuid = xn_strdup(uuid);
	c->type = xn_strdup(type);
	c->device_config = device_config ? json_deep_copy(device_config) : json_object();
	const char *path = json_string_value(json_object_get(c->device_config, "path"));
	const char *loc = json_string_value(json_object_get(c->device_config, "location"));
	if (strcmp(type, "file") == 0)
		c->dir = path ? xn_strdup(path) : xn_asprintf("%s/sr/%s", h->data_dir, uuid);
	else if (strcmp(type, "iso") == 0 && loc && loc[0] == '/')
		c->dir = xn_strdup(loc);
	return c;
}

xn_sr_conf *xn_sr_conf_get(xn_host *h, const char *sr_ref)
{
	const char *type = xn_db_str(h->db, sr_ref, "type");
	if (!xn_sr_ops_by_type(type))
		return NULL;
	xn_sr_conf *c = xn_sr_conf_new(h, type, xn_db_str(h->db, sr_ref, "uuid"),
				       pbd_config(h, sr_ref));
	free(c->ref);
	c->ref = xn_strdup(sr_ref);
	return c;
}

void xn_sr_conf_free(xn_sr_conf *c)
{
	if (!c)
		return;
	free(c->ref);
	free(c->uuid);
	free(c->type);
	json_decref(c->device_config);
	free(c->dir);
	free(c);
}

char *xn_sr_file_dir(xn_host *h, const char *sr_ref)
{
	xn_sr_conf *c = xn_sr_conf_get(h, sr_ref);
	char *dir = c && c->dir ? xn_strdup(c->dir) : xn_asprintf("%s/sr/%s", h->data_dir,
								 xn_db_str(h->db, sr_ref, "uuid"));
	xn_sr_conf_free(c);
	return dir;
}

/* ---- blocking driver calls on the thread pool ------------------------ */

struct sr_work {
	uv_work_t req;
	xn_sr_conf *conf;
	xn_sr_work_fn work;
	xn_storage_done done;
	void *ud;
	xn_error *err;
};

static void sr_work_run(uv_work_t *req)
{
	struct sr_work *w = req->data;
	w->work(w->conf, w->ud, &w->err);
}

static void sr_work_after(uv_work_t *req, int status)
{
	struct sr_work *w = req->data;
	if (status < 0 && !w->err)
		xn_fail_internal(&w->err, "storage work cancelled");
	if (w->done)
		w->done(w->ud, w->err);
	else
		xn_error_free(w->err);
	xn_sr_conf_free(w->conf);
	free(w);
}

void xn_sr_work(xn_host *h, const char *sr_ref, xn_sr_work_fn work, void *ud,
		xn_storage_done done)
{
	xn_sr_conf *c = xn_sr_conf_get(h, sr_ref);
	if (!c) {
		xn_error *err = NULL;
		xn_fail(&err, "SR_UNKNOWN_DRIVER", xn_db_str(h->db, sr_ref, "type"), NULL);
		if (done)
			done(ud, err);
		else
			xn_error_free(err);
		return;
	}
	xn_sr_work_on(h, c, work, ud, done);
}

void xn_sr_work_on(xn_host *h, xn_sr_conf *conf, xn_sr_work_fn work, void *ud,
		   xn_storage_done done)
{
	struct sr_work *w = xn_calloc(1, sizeof(*w));
	w->conf = conf;
	w->work = work;
	w->done = done;
	w->ud = ud;
	w->req.data = w;
	int rc = uv_queue_work(h->loop, &w->req, sr_work_run, sr_work_after);
	if (rc < 0) {
		xn_fail_internal(&w->err, "cannot queue storage work: %s", uv_strerror(rc));
		sr_work_after(&w->req, 0);
	}
}

/* ---- sizes ------------------------------------------------------------ */

struct sizes {
	xn_host *h;
	char *sr;
	int64_t total, free_bytes, used;
	bool have_space;
	json_t *files;          /* the driver's list: {name: {"size": allocated}} */
};

static int sizes_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	struct sizes *s = ud;
	const xn_sr_ops *ops = xn_sr_ops_by_type(c->type);
	json_t *files = NULL;
	if (ops->space(c, &s->total, &s->free_bytes, err) < 0)
		return -1;
	s->have_space = true;
	if (ops->list(c, &files, err) < 0)
		return -1;
	const char *k;
	json_t *v;
	json_object_foreach(files, k, v)
		s->used += json_integer_value(json_object_get(v, "size"));
	s->files = files;
	return 0;
}

static void sizes_done(void *ud, xn_error *err)
{
	struct sizes *s = ud;
	xn_host *h = s->h;
	if (err)
		xn_debug("storage: sizes of %s: %s", s->sr, err->message);
	if (s->have_space && xn_db_get(h->db, s->sr)) {
		json_int_t virt = 0;
		size_t i;
		json_t *vdi;
		xn_changes *cs = xn_changes_new(h->db);
		json_array_foreach(xn_db_field(h->db, s->sr, "VDIs"), i, vdi) {
			const char *ref = json_string_value(vdi);
			virt += xn_db_int(h->db, ref, "virtual_size");
			/* a VDI's own image file: what it takes on the SR */
			XN_AUTOFREE char *file = xn_location_file(xn_db_str(h->db, ref, "location"));
			json_t *f = json_object_get(s->files, file);
			json_int_t used = json_integer_value(json_object_get(f, "size"));
			if (f && used != xn_db_int(h->db, ref, "physical_utilisation"))
				xn_changes_set(cs, ref, "physical_utilisation", json_integer(used));
		}
		json_t *rec = xn_changes_edit(cs, s->sr);
		/* A local SR shares its file system: what it can grow to is
		 * what it uses plus what is free. */
		bool dedicated = !xn_streq(xn_db_str(h->db, s->sr, "type"), "file");
		json_int_t size = dedicated ? s->total : s->used + s->free_bytes;
		json_object_set_new(rec, "physical_size", json_integer(size));
		json_object_set_new(rec, "physical_utilisation",
				    json_integer(dedicated ? s->total - s->free_bytes : s->used));
		json_object_set_new(rec, "virtual_allocation", json_integer(virt));
		xn_error *e = NULL;
		if (xn_db_commit(h->db, cs, &e) < 0) {
			xn_warn("storage: %s", e->message);
			xn_error_free(e);
		}
	}
	xn_error_free(err);
	json_decref(s->files);
	free(s->sr);
	free(s);
}

void xn_sr_update_sizes(xn_host *h, const char *sr_ref)
{
	struct sizes *s = xn_calloc(1, sizeof(*s));
	s->h = h;
	s->sr = xn_strdup(sr_ref);
	xn_sr_work(h, sr_ref, sizes_work, s, sizes_done);
}

/* ---- VDIs ------------------------------------------------------------- */

char *xn_location_file(const char *location)
{
	return xn_asprintf("%s%s", location, strchr(location, '.') ? "" : ".qcow2");
}

/* What the SR's driver makes of location: its url (want_node false) or
 * its blockdev node, as a new string or reference; NULL if the SR has
 * no driver or there is no location. */
static void *driver_name(xn_host *h, const char *sr_ref, const char *location, bool want_node)
{
	xn_sr_conf *c = location && location[0] ? xn_sr_conf_get(h, sr_ref) : NULL;
	if (!c)
		return NULL;
	XN_AUTOFREE char *file = xn_location_file(location);
	const xn_sr_ops *ops = xn_sr_ops_by_type(c->type);
	void *out = want_node ? (void *)ops->node(c, file) : (void *)ops->url(c, file);
	xn_sr_conf_free(c);
	return out;
}

char *xn_location_url(xn_host *h, const char *sr_ref, const char *location)
{
	return driver_name(h, sr_ref, location, false);
}

json_t *xn_location_node(xn_host *h, const char *sr_ref, const char *location)
{
	return driver_name(h, sr_ref, location, true);
}

char *xn_vdi_path(xn_host *h, const char *vdi_ref)
{
	return xn_location_url(h, xn_db_str(h->db, vdi_ref, "SR"),
			       xn_db_str(h->db, vdi_ref, "location"));
}

json_t *xn_vdi_node(xn_host *h, const char *vdi_ref)
{
	return xn_location_node(h, xn_db_str(h->db, vdi_ref, "SR"),
				xn_db_str(h->db, vdi_ref, "location"));
}

const char *xn_vdi_format(xn_host *h, const char *vdi_ref)
{
	const char *loc = xn_db_str(h->db, vdi_ref, "location");
	const char *dot = strrchr(loc, '.');
	return dot && strcmp(dot, ".qcow2") != 0 ? "raw" : "qcow2";
}

/* ---- the local SR ----------------------------------------------------- */

static const char *find_local_sr(xn_host *h)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("SR")), k, v)
		if (xn_streq(json_string_value(json_object_get(json_object_get(v, "other_config"),
								  "xenia-local")), "true"))
			return k;
	return NULL;
}

static int ensure_local_sr(xn_host *h, xn_error **err)
{
	const char *sr = find_local_sr(h);
	xn_changes *cs = xn_changes_new(h->db);
	if (!sr) {
		sr = xn_changes_add(cs, xn_model_class("SR"), NULL,
				    json_pack("{s:s,s:s,s:s,s:s,s:{s:s}}", "name_label",
					      "Local storage", "name_description",
					      "Disks in a directory of this host", "type", "file",
					      "content_type", "user", "other_config", "xenia-local",
					      "true"));
		XN_AUTOFREE char *uuid = xn_strdup(json_string_value(
			json_object_get(xn_changes_edit(cs, sr), "uuid")));
		XN_AUTOFREE char *dir = xn_asprintf("%s/sr/%s", h->data_dir, uuid);
		xn_changes_add(cs, xn_model_class("PBD"), NULL,
			       json_pack("{s:s,s:s,s:{s:s},s:b}", "SR", sr, "host", h->host_ref,
					 "device_config", "path", dir, "currently_attached", 1));
		xn_changes_set(cs, h->pool_ref, "default_SR", json_string(sr));
		xn_changes_set(cs, h->pool_ref, "suspend_image_SR", json_string(sr));
		xn_changes_set(cs, h->pool_ref, "crash_dump_SR", json_string(sr));
	}
	h->local_sr_ref = xn_strdup(sr);
	if (xn_db_commit(h->db, cs, err) < 0)
		return -1;
	XN_AUTOFREE char *dir = xn_sr_file_dir(h, h->local_sr_ref);
	return xn_mkdir_p(dir, 0700, err);
}

int xn_storage_init(xn_host *h, xn_error **err)
{
	if (ensure_local_sr(h, err) < 0)
		return -1;
	/* Files an interrupted operation left are collected before anything
	 * new is written. */
	if (xn_sr_gc_sync(h, h->local_sr_ref, err) < 0)
		return -1;
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("SR")), k, v)
		xn_sr_plug_all(h, k);
	return 0;
}

const char *xn_vdi_import_sync(xn_host *h, xn_changes *cs, const char *sr_ref, const char *src,
			       const char *name, xn_error **err)
{
	XN_AUTOFREE char *uuid = xn_uuid_new();
	XN_AUTOFREE char *dir = xn_sr_file_dir(h, sr_ref);
	XN_AUTOFREE char *dst = xn_asprintf("%s/%s.qcow2", dir, uuid);
	char *argv[] = {"qemu-img", "convert", "-q", "-O", "qcow2", (char *)src, dst, NULL};
	if (xn_run_sync(argv, NULL, err) < 0)
		return NULL;
	char *info_argv[] = {"qemu-img", "info", "--output=json", dst, NULL};
	XN_AUTOFREE char *info = NULL;
	if (xn_run_sync(info_argv, &info, err) < 0)
		return NULL;
	json_t *j = json_loads(info, 0, NULL);
	json_int_t vsize = json_integer_value(json_object_get(j, "virtual-size"));
	json_int_t asize = json_integer_value(json_object_get(j, "actual-size"));
	json_decref(j);
	return xn_changes_add(cs, xn_model_class("VDI"), NULL,
			      json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:b}", "uuid", uuid,
					"name_label", name, "SR", sr_ref, "location", uuid,
					"virtual_size", vsize, "physical_utilisation", asize,
					"type", "system", "managed", 1));
}
