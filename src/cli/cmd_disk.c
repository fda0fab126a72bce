/* cmd_disk.c: disks from the command line (xenapi.md §4.4): vdi-create,
 * vdi-destroy, vbd-create, vbd-destroy. Each is one XenAPI call (two for
 * the uuid look-ups); sizes take xe's units (512MiB, 10GiB, ...). */
#include <string.h>

#include "cli/cli.h"

int xe_print_new_uuid(xe_ctx *ctx, const char *cls, json_t *ref, xn_error **err)
{
	if (!ref)
		return -1;
	XN_AUTOFREE char *method = xn_asprintf("%s.get_uuid", cls);
	json_t *uuid = xe_call(ctx->conn, method, json_pack("[O]", ref), err);
	json_decref(ref);
	if (!uuid)
		return -1;
	fprintf(ctx->out, "%s\n", json_string_value(uuid));
	json_decref(uuid);
	return 0;
}

int xe_destroy_by_uuid(xe_ctx *ctx, const char *cls, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, cls, xe_arg(ctx->args, "uuid"), err);
	if (!ref)
		return -1;
	XN_AUTOFREE char *method = xn_asprintf("%s.destroy", cls);
	json_t *r = xe_call(ctx->conn, method, json_pack("[s]", ref), err);
	json_decref(r);
	return r ? 0 : -1;
}

int xe_cmd_vdi_create(xe_ctx *ctx, xn_error **err)
{
	int64_t size;
	if (xe_parse_size(xe_arg(ctx->args, "virtual-size"), &size, err) < 0)
		return -1;
	XN_AUTOFREE char *sr = xe_ref_by_uuid(ctx, "SR", xe_arg(ctx->args, "sr-uuid"), err);
	if (!sr)
		return -1;
	const char *type = xe_arg(ctx->args, "type");
	const char *desc = xe_arg(ctx->args, "name-description");
	json_t *args = json_pack("{s:s,s:s,s:s,s:I,s:s,s:b,s:b,s:{}}", "SR", sr, "name_label",
				 xe_arg(ctx->args, "name-label"), "name_description",
				 desc ? desc : "", "virtual_size", (json_int_t)size, "type",
				 type ? type : "user", "sharable", 0, "read_only", 0,
				 "other_config");
	return xe_print_new_uuid(ctx, "VDI", xe_call(ctx->conn, "VDI.create", json_pack("[o]", args), err),
			  err);
}

int xe_cmd_vdi_destroy(xe_ctx *ctx, xn_error **err)
{
	return xe_destroy_by_uuid(ctx, "VDI", err);
}

/* vbd-create vm-uuid= device= [vdi-uuid=] [bootable=] [type=Disk|CD]
 * [mode=RW|RO]: no vdi-uuid makes an empty drive. */
int xe_cmd_vbd_create(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *vm = xe_ref_by_uuid(ctx, "VM", xe_arg(ctx->args, "vm-uuid"), err);
	if (!vm)
		return -1;
	const char *vdi_uuid = xe_arg(ctx->args, "vdi-uuid");
	XN_AUTOFREE char *vdi = vdi_uuid ? xe_ref_by_uuid(ctx, "VDI", vdi_uuid, err)
					 : xn_strdup("OpaqueRef:NULL");
	if (!vdi)
		return -1;
	bool bootable = false;
	if (xe_arg(ctx->args, "bootable") &&
	    xe_parse_bool(xe_arg(ctx->args, "bootable"), &bootable, err) < 0)
		return -1;
	const char *type = xe_arg(ctx->args, "type");
	const char *mode = xe_arg(ctx->args, "mode");
	json_t *args = json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:b,s:{},s:s,s:{}}", "VM", vm, "VDI",
				 vdi, "userdevice", xe_arg(ctx->args, "device"), "bootable",
				 bootable, "mode", mode ? mode : "RW", "type", type ? type : "Disk",
				 "empty", vdi_uuid == NULL, "other_config", "qos_algorithm_type", "",
				 "qos_algorithm_params");
	return xe_print_new_uuid(ctx, "VBD", xe_call(ctx->conn, "VBD.create", json_pack("[o]", args), err),
			  err);
}

int xe_cmd_vbd_destroy(xe_ctx *ctx, xn_error **err)
{
	return xe_destroy_by_uuid(ctx, "VBD", err);
}

/* vdi-resize uuid= disk-size=: grow a disk; a running VM sees the new
 * size at once. */
int xe_cmd_vdi_resize(xe_ctx *ctx, xn_error **err)
{
	int64_t size;
	if (xe_parse_size(xe_arg(ctx->args, "disk-size"), &size, err) < 0)
		return -1;
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VDI", xe_arg(ctx->args, "uuid"), err);
	if (!ref)
		return -1;
	json_t *r = xe_call(ctx->conn, "VDI.resize", json_pack("[sI]", ref, (json_int_t)size), err);
	json_decref(r);
	return r ? 0 : -1;
}

/* vm-clone: a linked clone of a halted VM (its disks are copy-on-write
 * overlays, made in milliseconds whatever their size). */
int xe_cmd_vm_clone(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *vm = xe_ref_by_uuid(ctx, "VM", xe_arg(ctx->args, "uuid"), err);
	if (!vm)
		return -1;
	json_t *clone = xe_call(ctx->conn, "VM.clone",
				json_pack("[ss]", vm, xe_arg(ctx->args, "new-name-label")), err);
	return xe_print_new_uuid(ctx, "VM", clone, err);
}
