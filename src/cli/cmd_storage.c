/* cmd_storage.c: storage and snapshots from the command line
 * (xenapi.md §4.4): sr-create/scan/update/forget/destroy, pbd-plug and
 * pbd-unplug, vdi-clone/snapshot/copy, vm-copy, vm-snapshot,
 * vm-checkpoint, snapshot-revert. Each is one XenAPI call plus uuid
 * look-ups; new objects' uuids are printed. */
#include <string.h>

#include "cli/cli.h"

/* method(ref of uuid=) for a class, void result. */
static int on_uuid(xe_ctx *ctx, const char *cls, const char *method, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, cls, xe_arg(ctx->args, "uuid"), err);
	return ref ? xe_call_void(ctx->conn, method, json_pack("[s]", ref), err) : -1;
}

static const char *arg_or(xe_ctx *ctx, const char *key, const char *dflt)
{
	const char *v = xe_arg(ctx->args, key);
	return v ? v : dflt;
}

/* sr-create name-label= type= [content-type=] [shared=] [device-config:k=v ...]
 * [sm-config:k=v ...] [physical-size=] [host-uuid=] */
int xe_cmd_sr_create(xe_ctx *ctx, xn_error **err)
{
	json_t *dc = json_object(), *smc = json_object();
	for (size_t i = 0; i < ctx->args->nparams; i++) {
		const xe_param *p = &ctx->args->params[i];
		if (strncmp(p->key, "device-config:", 14) == 0)
			json_object_set_new(dc, p->key + 14, json_string(p->value));
		else if (strncmp(p->key, "sm-config:", 10) == 0)
			json_object_set_new(smc, p->key + 10, json_string(p->value));
	}
	char *host = NULL;
	if (xe_arg(ctx->args, "host-uuid")) {
		host = xe_ref_by_uuid(ctx, "host", xe_arg(ctx->args, "host-uuid"), err);
	} else {
		json_t *hosts = xe_call(ctx->conn, "host.get_all", json_pack("[]"), err);
		if (hosts && json_array_size(hosts))
			host = xn_strdup(json_string_value(json_array_get(hosts, 0)));
		json_decref(hosts);
	}
	int64_t size = 0;
	if (!host || (xe_arg(ctx->args, "physical-size") &&
		      xe_parse_size(xe_arg(ctx->args, "physical-size"), &size, err) < 0)) {
		free(host);
		json_decref(dc);
		json_decref(smc);
		return -1;
	}
	json_t *params = json_pack("[s,o,I,s,s,s,s,b,o]", host, dc, (json_int_t)size,
				   xe_arg(ctx->args, "name-label"),
				   arg_or(ctx, "name-description", ""), xe_arg(ctx->args, "type"),
				   arg_or(ctx, "content-type", ""), xe_arg_flag(ctx->args, "shared"),
				   smc);
	free(host);
	return xe_print_new_uuid(ctx, "SR", xe_call(ctx->conn, "SR.create", params, err), err);
}

int xe_cmd_sr_op(xe_ctx *ctx, xn_error **err)
{
	return on_uuid(ctx, "SR", ctx->cmd->data, err);
}

int xe_cmd_pbd_op(xe_ctx *ctx, xn_error **err)
{
	return on_uuid(ctx, "PBD", ctx->cmd->data, err);
}

/* vdi-clone / vdi-snapshot uuid= [new-name-label=] [new-name-description=] */
int xe_cmd_vdi_fork(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VDI", xe_arg(ctx->args, "uuid"), err);
	if (!ref)
		return -1;
	json_t *nref = xe_call(ctx->conn, ctx->cmd->data, json_pack("[s{}]", ref), err);
	if (!nref)
		return -1;
	const char *label = xe_arg(ctx->args, "new-name-label");
	const char *desc = xe_arg(ctx->args, "new-name-description");
	if ((label && xe_call_void(ctx->conn, "VDI.set_name_label",
				json_pack("[Os]", nref, label), err) < 0) ||
	    (desc && xe_call_void(ctx->conn, "VDI.set_name_description",
			       json_pack("[Os]", nref, desc), err) < 0)) {
		json_decref(nref);
		return -1;
	}
	return xe_print_new_uuid(ctx, "VDI", nref, err);
}

int xe_cmd_vdi_copy(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VDI", xe_arg(ctx->args, "uuid"), err);
	XN_AUTOFREE char *sr = ref ? xe_ref_by_uuid(ctx, "SR", xe_arg(ctx->args, "sr-uuid"), err)
				   : NULL;
	if (!sr)
		return -1;
	return xe_print_new_uuid(ctx, "VDI",
			 xe_call(ctx->conn, "VDI.copy", json_pack("[ss]", ref, sr), err), err);
}

/* The one VM (or snapshot) a command selects. */
static char *one_vm(xe_ctx *ctx, const char *spec, xn_error **err)
{
	xe_rec **vms = xe_select(ctx, xe_class_spec_find(spec), NULL, err);
	if (!vms)
		return NULL;
	char *ref = vms[1] ? NULL : xn_strdup(vms[0]->ref);
	if (vms[1])
		xe_fail(err, "Multiple matches: this command works on one VM at a time.");
	xe_recs_free(vms);
	return ref;
}

/* vm-snapshot / vm-checkpoint / vm-copy vm= new-name-label= [sr-uuid=]
 * [new-name-description=] */
int xe_cmd_vm_copy_op(xe_ctx *ctx, xn_error **err)
{
	const char *method = ctx->cmd->data;
	XN_AUTOFREE char *vm = one_vm(ctx, "vm", err);
	if (!vm)
		return -1;
	json_t *params = json_pack("[ss]", vm, xe_arg(ctx->args, "new-name-label"));
	if (strcmp(method, "VM.copy") == 0) {
		const char *sr_uuid = xe_arg(ctx->args, "sr-uuid");
		XN_AUTOFREE char *sr = sr_uuid ? xe_ref_by_uuid(ctx, "SR", sr_uuid, err)
					       : xn_strdup("OpaqueRef:NULL");
		if (!sr) {
			json_decref(params);
			return -1;
		}
		json_array_append_new(params, json_string(sr));
	} else if (strcmp(method, "VM.snapshot") == 0) {
		json_array_append_new(params, json_array());
	}
	json_t *nref = xe_call(ctx->conn, method, params, err);
	const char *desc = xe_arg(ctx->args, "new-name-description");
	if (nref && desc &&
	    xe_call_void(ctx->conn, "VM.set_name_description", json_pack("[Os]", nref, desc), err) < 0) {
		json_decref(nref);
		return -1;
	}
	return xe_print_new_uuid(ctx, "VM", nref, err);
}

/* snapshot-revert snapshot-uuid= (or uuid=) */
int xe_cmd_snapshot_revert(xe_ctx *ctx, xn_error **err)
{
	const char *uuid = xe_arg(ctx->args, "snapshot-uuid");
	if (!uuid)
		uuid = xe_arg(ctx->args, "uuid");
	if (!uuid)
		return xe_fail(err, "Required parameter not found: snapshot-uuid");
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VM", uuid, err);
	return ref ? xe_call_void(ctx->conn, "VM.revert", json_pack("[s]", ref), err) : -1;
}

/* snapshot-destroy uuid= (the snapshot's disks stay; snapshot-uninstall
 * removes them too) */
int xe_cmd_snapshot_destroy(xe_ctx *ctx, xn_error **err)
{
	return on_uuid(ctx, "VM", "VM.destroy", err);
}
