/* cmd_vbd.c: disks and CD drives of VMs from the command line (xenapi.md
 * §4.4, xapi's cli_operations.ml): vbd-plug, vbd-unplug, vbd-insert,
 * vbd-eject on one VBD; vm-disk-add/-remove/-list and vm-cd-add/-insert/
 * -eject/-remove/-list on VM selectors (vm= name or uuid, any field
 * filter). Each is a few XenAPI calls; the server does the checks. */
#include <string.h>

#include "cli/cli.h"

#define SELECTABLE "is-control-domain=false"

/* vbd-plug, vbd-unplug [--force], vbd-eject: one call on uuid=. */
static int vbd_call(xe_ctx *ctx, const char *method, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VBD", xe_arg(ctx->args, "uuid"), err);
	return ref ? xe_call_void(ctx->conn, method, json_pack("[s]", ref), err) : -1;
}

int xe_cmd_vbd_plug(xe_ctx *ctx, xn_error **err)
{
	return vbd_call(ctx, "VBD.plug", err);
}

int xe_cmd_vbd_unplug(xe_ctx *ctx, xn_error **err)
{
	return vbd_call(ctx, xe_arg_flag(ctx->args, "force") ? "VBD.unplug_force" : "VBD.unplug",
			err);
}

int xe_cmd_vbd_eject(xe_ctx *ctx, xn_error **err)
{
	return vbd_call(ctx, "VBD.eject", err);
}

int xe_cmd_vbd_insert(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *vbd = xe_ref_by_uuid(ctx, "VBD", xe_arg(ctx->args, "uuid"), err);
	XN_AUTOFREE char *vdi = vbd ? xe_ref_by_uuid(ctx, "VDI", xe_arg(ctx->args, "vdi-uuid"), err)
				    : NULL;
	return vdi ? xe_call_void(ctx->conn, "VBD.insert", json_pack("[ss]", vbd, vdi), err) : -1;
}

/* ---- helpers over the selected VMs -------------------------------------- */

static json_t *record(xe_ctx *ctx, const char *cls, const char *ref)
{
	return ref ? ctx->lk.record(ctx->lk.ctx, cls, ref) : NULL;
}

static const char *str(json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));
	return s ? s : "";
}

/* Run fn on every selected VM, stopping at the first failure. */
static int each_vm(xe_ctx *ctx, int (*fn)(xe_ctx *ctx, xe_rec *vm, xn_error **err),
		   xn_error **err)
{
	xe_rec **vms = xe_select(ctx, xe_class_spec_find("vm"), SELECTABLE, err);
	if (!vms)
		return -1;
	int rc = 0;
	for (size_t i = 0; vms[i] && rc == 0; i++)
		rc = fn(ctx, vms[i], err);
	xe_recs_free(vms);
	return rc;
}

/* The VM's VBDs of type type ("Disk", "CD"), refs borrowed from vm. */
static char **vbds_of(xe_ctx *ctx, xe_rec *vm, const char *type)
{
	char **out = xn_strv_new();
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(vm->json, "VBDs"), i, v) {
		json_t *vbd = record(ctx, "VBD", json_string_value(v));
		if (xn_streq(str(vbd, "type"), type))
			xn_strv_push(&out, json_string_value(v));
	}
	return out;
}

/* The ISO VDI named cd-name (an ISO SR's VDI), caller frees. */
static char *find_cd(xe_ctx *ctx, xn_error **err)
{
	const char *name = xe_arg(ctx->args, "cd-name");
	json_t *vdis = xe_cache_all(ctx->cache, "VDI", err);
	if (!vdis)
		return NULL;
	const char *ref;
	json_t *vdi;
	json_object_foreach(vdis, ref, vdi) {
		json_t *sr = record(ctx, "SR", str(vdi, "SR"));
		if (xn_streq(str(vdi, "name_label"), name) && xn_streq(str(sr, "content_type"), "iso"))
			return xn_strdup(ref);
	}
	xe_fail(err, "CD %s not found!", name);
	return NULL;
}

/* The single CD drive of a VM (xe refuses to guess among several). */
static const char *the_cd(xe_ctx *ctx, xe_rec *vm, const char *cmd, char ***cds,
			  xn_error **err)
{
	*cds = vbds_of(ctx, vm, "CD");
	size_t n = xn_strv_len(*cds);
	if (n == 0)
		xe_fail(err, "No CDs found");
	else if (n > 1)
		xe_fail(err, "Two or more CDs found. Please use %s", cmd);
	return n == 1 ? (*cds)[0] : NULL;
}

/* VBD.create, then VBD.plug if the VM runs; the VBD goes again if the
 * plug fails (xapi's create_vbd_and_plug). */
static int create_and_plug(xe_ctx *ctx, xe_rec *vm, const char *vdi, bool cd, xn_error **err)
{
	json_t *args = json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:b,s:b,s:{},s:s,s:{}}", "VM", vm->ref,
				 "VDI", vdi, "userdevice", xe_arg(ctx->args, "device"), "bootable", 0,
				 "mode", cd ? "RO" : "RW", "type", cd ? "CD" : "Disk", "unpluggable",
				 1, "empty", 0, "other_config", "qos_algorithm_type", "",
				 "qos_algorithm_params");
	json_t *vbd = xe_call(ctx->conn, "VBD.create", json_pack("[o]", args), err);
	if (!vbd)
		return -1;
	int rc = 0;
	if (xn_streq(str(vm->json, "power_state"), "Running") &&
	    xe_call_void(ctx->conn, "VBD.plug", json_pack("[O]", vbd), err) < 0) {
		XN_AUTOERR xn_error *ignored = NULL;
		xe_call_void(ctx->conn, "VBD.destroy", json_pack("[O]", vbd), &ignored);
		rc = -1;
	}
	json_decref(vbd);
	return rc;
}

/* ---- vm-disk-add / -remove ---------------------------------------------- */

/* sr-uuid=, else the pool's default SR. Caller frees. */
static char *disk_sr(xe_ctx *ctx, xn_error **err)
{
	const char *uuid = xe_arg(ctx->args, "sr-uuid");
	if (uuid)
		return xe_ref_by_uuid(ctx, "SR", uuid, err);
	json_t *pools = xe_cache_all(ctx->cache, "pool", err);
	const char *ref;
	json_t *pool;
	json_object_foreach(pools, ref, pool) {
		const char *sr = str(pool, "default_SR");
		if (record(ctx, "SR", sr))
			return xn_strdup(sr);
	}
	if (pools)
		xe_fail(err, "No default Pool SR set; you must specify an SR on the commandline");
	return NULL;
}

static int disk_add(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	int64_t size;
	if (xe_parse_size(xe_arg(ctx->args, "disk-size"), &size, err) < 0)
		return -1;
	XN_AUTOFREE char *sr = disk_sr(ctx, err);
	if (!sr)
		return -1;
	json_t *args = json_pack("{s:s,s:s,s:s,s:I,s:s,s:b,s:b,s:{}}", "SR", sr, "name_label",
				 "Created by xe", "name_description", "Created by xe",
				 "virtual_size", (json_int_t)size, "type", "user", "sharable", 0,
				 "read_only", 0, "other_config");
	json_t *vdi = xe_call(ctx->conn, "VDI.create", json_pack("[o]", args), err);
	if (!vdi)
		return -1;
	int rc = create_and_plug(ctx, vm, json_string_value(vdi), false, err);
	if (rc < 0) {
		XN_AUTOERR xn_error *ignored = NULL;
		xe_call_void(ctx->conn, "VDI.destroy", json_pack("[O]", vdi), &ignored);
	}
	json_decref(vdi);
	return rc;
}

int xe_cmd_vm_disk_add(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, disk_add, err);
}

/* The VBD, its disk and (if it is attached) the hot-unplug first. */
static int disk_remove(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	const char *device = xe_arg(ctx->args, "device");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(vm->json, "VBDs"), i, v) {
		json_t *vbd = record(ctx, "VBD", json_string_value(v));
		if (!xn_streq(str(vbd, "userdevice"), device))
			continue;
		XN_AUTOFREE char *vdi = xn_strdup(str(vbd, "VDI"));
		if (json_is_true(json_object_get(vbd, "currently_attached")) &&
		    xe_call_void(ctx->conn, "VBD.unplug", json_pack("[O]", v), err) < 0)
			return -1;
		if (xe_call_void(ctx->conn, "VBD.destroy", json_pack("[O]", v), err) < 0)
			return -1;
		if (!record(ctx, "VDI", vdi))
			return 0;
		return xe_call_void(ctx->conn, "VDI.destroy", json_pack("[s]", vdi), err);
	}
	return xe_fail(err, "Disk not found");
}

int xe_cmd_vm_disk_remove(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, disk_remove, err);
}

/* ---- vm-disk-list / vm-cd-list ------------------------------------------ */

static char **keys_of(xe_ctx *ctx, const char *param, const char *dflt)
{
	const char *p = xe_arg(ctx->args, param);
	if (p && strcmp(p, "all") == 0)
		return NULL;
	char **keys = xn_strv_new();
	XN_AUTOFREE char *copy = xn_strdup(p ? p : dflt);
	for (char *save, *tok = strtok_r(copy, p ? "," : " ", &save); tok;
	     tok = strtok_r(NULL, p ? "," : " ", &save))
		xn_strv_push(&keys, tok);
	return keys;
}

/* xapi's layout: "Disk 0 VBD:", the VBD record, "Disk 0 VDI:", the VDI
 * record (none for an empty drive). */
static int list_drives(xe_ctx *ctx, xe_rec *vm, bool cd)
{
	const char *what = cd ? "CD" : "Disk";
	XN_AUTOSTRV char **vbds = vbds_of(ctx, vm, what);
	XN_AUTOSTRV char **vbd_keys = keys_of(ctx, "vbd-params",
					      cd ? "uuid vm-name-label userdevice empty"
						 : "uuid vm-name-label userdevice");
	XN_AUTOSTRV char **vdi_keys = keys_of(ctx, "vdi-params",
					      "uuid name-label virtual-size sr-name-label");
	for (size_t i = 0; vbds[i]; i++) {
		json_t *vbd = record(ctx, "VBD", vbds[i]);
		xe_rec *r = xe_rec_new(xe_class_spec_find("vbd"), vbds[i], vbd);
		XN_AUTOFREE char *text = xe_format_record(r, vbd_keys, true, &ctx->lk);
		fprintf(ctx->out, "%s %zu VBD:\n%s", what, i, text);
		xe_rec_free(r);
		json_t *vdi = json_is_true(json_object_get(vbd, "empty"))
				      ? NULL
				      : record(ctx, "VDI", str(vbd, "VDI"));
		if (!vdi)
			continue;
		r = xe_rec_new(xe_class_spec_find("vdi"), str(vbd, "VDI"), vdi);
		XN_AUTOFREE char *vtext = xe_format_record(r, vdi_keys, true, &ctx->lk);
		fprintf(ctx->out, "%s %zu VDI:\n%s", what, i, vtext);
		xe_rec_free(r);
	}
	return 0;
}

static int disk_list(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	(void)err;
	return list_drives(ctx, vm, false);
}

static int cd_list(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	(void)err;
	return list_drives(ctx, vm, true);
}

int xe_cmd_vm_disk_list(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, disk_list, err);
}

int xe_cmd_vm_cd_list(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, cd_list, err);
}

/* ---- vm-cd-add / -insert / -eject / -remove ----------------------------- */

static int cd_add(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	XN_AUTOFREE char *vdi = find_cd(ctx, err);
	return vdi ? create_and_plug(ctx, vm, vdi, true, err) : -1;
}

int xe_cmd_vm_cd_add(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, cd_add, err);
}

static int cd_insert(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	XN_AUTOFREE char *vdi = find_cd(ctx, err);
	XN_AUTOSTRV char **cds = NULL;
	const char *cd = vdi ? the_cd(ctx, vm, "vbd-insert", &cds, err) : NULL;
	return cd ? xe_call_void(ctx->conn, "VBD.insert", json_pack("[ss]", cd, vdi), err) : -1;
}

int xe_cmd_vm_cd_insert(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, cd_insert, err);
}

static int cd_eject(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	XN_AUTOSTRV char **cds = NULL;
	const char *cd = the_cd(ctx, vm, "vbd-eject", &cds, err);
	return cd ? xe_call_void(ctx->conn, "VBD.eject", json_pack("[s]", cd), err) : -1;
}

int xe_cmd_vm_cd_eject(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, cd_eject, err);
}

/* The CD drive holding the ISO named cd-name goes (its ISO stays). */
static int cd_remove(xe_ctx *ctx, xe_rec *vm, xn_error **err)
{
	const char *name = xe_arg(ctx->args, "cd-name");
	XN_AUTOSTRV char **cds = vbds_of(ctx, vm, "CD");
	for (size_t i = 0; cds[i]; i++) {
		json_t *vdi = record(ctx, "VDI", str(record(ctx, "VBD", cds[i]), "VDI"));
		json_t *sr = record(ctx, "SR", str(vdi, "SR"));
		if (xn_streq(str(vdi, "name_label"), name) && xn_streq(str(sr, "content_type"), "iso"))
			return xe_call_void(ctx->conn, "VBD.destroy", json_pack("[s]", cds[i]), err);
	}
	return xe_fail(err, "Disk not found");
}

int xe_cmd_vm_cd_remove(xe_ctx *ctx, xn_error **err)
{
	return each_vm(ctx, cd_remove, err);
}
