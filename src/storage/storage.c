/* storage.c: the SR registry, the local SR, VDI paths and imports, and
 * garbage collection of unclaimed images at start (storage.h). */
#include "storage/storage.h"

#include <dirent.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/uuid.h"

static const xn_sr_ops *drivers[] = {&xn_sr_file_ops};

const xn_sr_ops *xn_sr_ops_of(xn_host *h, const char *sr_ref)
{
	const char *type = xn_db_str(h->db, sr_ref, "type");
	for (size_t i = 0; i < XN_ARRAY_LEN(drivers); i++)
		if (strcmp(drivers[i]->type, type) == 0)
			return drivers[i];
	return NULL;
}

char *xn_vdi_path(xn_host *h, const char *vdi_ref)
{
	const char *sr = xn_db_str(h->db, vdi_ref, "SR");
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops)
		return NULL;
	return ops->vdi_path(h, sr, xn_db_str(h->db, vdi_ref, "location"));
}

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

static void update_sizes(xn_host *h, xn_changes *cs, const char *sr)
{
	XN_AUTOFREE char *dir = xn_sr_file_dir(h, sr);
	struct statvfs st;
	if (statvfs(dir, &st) < 0)
		return;
	json_int_t size = (json_int_t)st.f_blocks * (json_int_t)st.f_frsize;
	json_int_t used = size - (json_int_t)st.f_bavail * (json_int_t)st.f_frsize;
	json_int_t virt = 0;
	size_t i;
	json_t *vdi;
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, vdi)
		virt += xn_db_int(h->db, json_string_value(vdi), "virtual_size");
	json_t *rec = xn_changes_edit(cs, sr);
	json_object_set_new(rec, "physical_size", json_integer(size));
	json_object_set_new(rec, "physical_utilisation", json_integer(used));
	json_object_set_new(rec, "virtual_allocation", json_integer(virt));
}

/* Image files no VDI record claims were left by an operation that a
 * crash interrupted before its commit: remove them. */
static void collect_garbage(xn_host *h, const char *sr)
{
	XN_AUTOFREE char *dir = xn_sr_file_dir(h, sr);
	DIR *d = opendir(dir);
	if (!d)
		return;
	json_t *claimed = json_object();
	size_t i;
	json_t *vdi;
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, vdi)
		json_object_set_new(claimed, xn_db_str(h->db, json_string_value(vdi), "location"),
				    json_true());
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		bool image = n > 6 && strcmp(e->d_name + n - 6, ".qcow2") == 0;
		bool state = n > 6 && strcmp(e->d_name + n - 6, ".state") == 0;
		if (!image && !state)
			continue;
		XN_AUTOFREE char *loc = image ? xn_strndup(e->d_name, n - 6) : xn_strdup(e->d_name);
		if (json_object_get(claimed, loc))
			continue;
		XN_AUTOFREE char *path = xn_asprintf("%s/%s", dir, e->d_name);
		xn_warn("storage: removing unclaimed image '%s'", path);
		unlink(path);
	}
	closedir(d);
	json_decref(claimed);
}

int xn_storage_init(xn_host *h, xn_error **err)
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
	if (xn_mkdir_p(dir, 0700, err) < 0)
		return -1;
	collect_garbage(h, h->local_sr_ref);
	cs = xn_changes_new(h->db);
	update_sizes(h, cs, h->local_sr_ref);
	return xn_db_commit(h->db, cs, err);
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
