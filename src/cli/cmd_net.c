/* cmd_net.c: network-create/destroy, vif-create/destroy and
 * vif-plug/unplug (xenapi.md §4: `xe network-create name-label=`, `xe
 * vif-create vm-uuid= network-uuid= device= [mac=]`, `xe vif-plug
 * uuid=`). Listing and params are the
 * generic *-list and *-param-* commands. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int xe_cmd_network_create(xe_ctx *ctx, xn_error **err)
{
	const xe_args *a = ctx->args;
	json_t *args = json_pack("{s:s,s:s,s:{},s:s}", "name_label", xe_arg(a, "name-label"),
				 "name_description", xe_arg(a, "name-description") ?: "",
				 "other_config", "bridge", xe_arg(a, "bridge") ?: "");
	/* other-config:key=value (a NAT network's ip_begin, ip_end, netmask,
	 * xenia-nat=true) */
	json_t *oc = json_object_get(args, "other_config");
	for (size_t i = 0; i < a->nparams; i++)
		if (xn_str_has_prefix(a->params[i].key, "other-config:"))
			json_object_set_new(oc, a->params[i].key + strlen("other-config:"),
					    json_string(a->params[i].value));
	const char *mtu = xe_arg(a, "MTU");
	if (mtu) {
		char *end = NULL;
		long v = strtol(mtu, &end, 10);
		if (!*mtu || *end || v < 68 || v > 65535)
			return xe_fail(err, "Error: MTU must be a number from 68 to 65535");
		json_object_set_new(args, "MTU", json_integer(v));
	}
	return xe_print_new_uuid(ctx, "network",
				 xe_call(ctx->conn, "network.create", json_pack("[o]", args), err), err);
}

int xe_cmd_network_destroy(xe_ctx *ctx, xn_error **err)
{
	return xe_destroy_by_uuid(ctx, "network", err);
}

int xe_cmd_vif_create(xe_ctx *ctx, xn_error **err)
{
	const xe_args *a = ctx->args;
	XN_AUTOFREE char *vm = xe_ref_by_uuid(ctx, "VM", xe_arg(a, "vm-uuid"), err);
	if (!vm)
		return -1;
	XN_AUTOFREE char *net = xe_ref_by_uuid(ctx, "network", xe_arg(a, "network-uuid"), err);
	if (!net)
		return -1;
	json_t *args = json_pack("{s:s,s:s,s:s,s:s,s:I,s:{},s:s,s:{}}", "VM", vm, "network", net,
				 "device", xe_arg(a, "device"), "MAC", xe_arg(a, "mac") ?: "",
				 "MTU", (json_int_t)0, "other_config", "qos_algorithm_type", "",
				 "qos_algorithm_params");
	return xe_print_new_uuid(ctx, "VIF",
				 xe_call(ctx->conn, "VIF.create", json_pack("[o]", args), err), err);
}

int xe_cmd_vif_destroy(xe_ctx *ctx, xn_error **err)
{
	return xe_destroy_by_uuid(ctx, "VIF", err);
}

int xe_cmd_pif_scan(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *host = xe_ref_by_uuid(ctx, "host", xe_arg(ctx->args, "host-uuid"), err);
	return host ? xe_call_void(ctx->conn, "PIF.scan", json_pack("[s]", host), err) : -1;
}

static int pif_op(xe_ctx *ctx, const char *method, xn_error **err)
{
	XN_AUTOFREE char *pif = xe_ref_by_uuid(ctx, "PIF", xe_arg(ctx->args, "uuid"), err);
	return pif ? xe_call_void(ctx->conn, method, json_pack("[s]", pif), err) : -1;
}

int xe_cmd_pif_plug(xe_ctx *ctx, xn_error **err)
{
	return pif_op(ctx, "PIF.plug", err);
}

int xe_cmd_pif_unplug(xe_ctx *ctx, xn_error **err)
{
	return pif_op(ctx, "PIF.unplug", err);
}

int xe_cmd_pif_forget(xe_ctx *ctx, xn_error **err)
{
	return pif_op(ctx, "PIF.forget", err);
}

/* vif-plug, vif-unplug [--force]: one call on uuid=. */
static int vif_call(xe_ctx *ctx, const char *method, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VIF", xe_arg(ctx->args, "uuid"), err);
	return ref ? xe_call_void(ctx->conn, method, json_pack("[s]", ref), err) : -1;
}

int xe_cmd_vif_plug(xe_ctx *ctx, xn_error **err)
{
	return vif_call(ctx, "VIF.plug", err);
}

int xe_cmd_vif_unplug(xe_ctx *ctx, xn_error **err)
{
	return vif_call(ctx, xe_arg_flag(ctx->args, "force") ? "VIF.unplug_force" : "VIF.unplug",
			err);
}

int xe_cmd_vlan_create(xe_ctx *ctx, xn_error **err)
{
	const xe_args *a = ctx->args;
	XN_AUTOFREE char *net = xe_ref_by_uuid(ctx, "network", xe_arg(a, "network-uuid"), err);
	XN_AUTOFREE char *pif = net ? xe_ref_by_uuid(ctx, "PIF", xe_arg(a, "pif-uuid"), err) : NULL;
	if (!pif)
		return -1;
	char *end = NULL;
	long long tag = strtoll(xe_arg(a, "vlan"), &end, 10);
	if (!*xe_arg(a, "vlan") || *end)
		return xe_fail(err, "Error: vlan must be a number from 1 to 4094");
	return xe_print_new_uuid(ctx, "VLAN",
				 xe_call(ctx->conn, "VLAN.create",
					 json_pack("[sIs]", pif, (json_int_t)tag, net), err),
				 err);
}

int xe_cmd_vlan_destroy(xe_ctx *ctx, xn_error **err)
{
	return xe_destroy_by_uuid(ctx, "VLAN", err);
}

int xe_cmd_bond_create(xe_ctx *ctx, xn_error **err)
{
	const xe_args *a = ctx->args;
	XN_AUTOFREE char *net = xe_ref_by_uuid(ctx, "network", xe_arg(a, "network-uuid"), err);
	if (!net)
		return -1;
	json_t *members = json_array();
	XN_AUTOFREE char *uuids = xn_strdup(xe_arg(a, "pif-uuids"));
	for (char *save = NULL, *u = strtok_r(uuids, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		char *pif = xe_ref_by_uuid(ctx, "PIF", u, err);
		if (!pif) {
			json_decref(members);
			return -1;
		}
		json_array_append_new(members, json_string(pif));
		free(pif);
	}
	const char *mode = xe_arg(a, "mode");
	return xe_print_new_uuid(ctx, "Bond",
				 xe_call(ctx->conn, "Bond.create",
					 json_pack("[soss{}]", net, members, xe_arg(a, "mac") ?: "",
						   mode ? mode : "balance-slb"),
					 err),
				 err);
}

int xe_cmd_bond_destroy(xe_ctx *ctx, xn_error **err)
{
	return xe_destroy_by_uuid(ctx, "Bond", err);
}

int xe_cmd_pif_reconfigure_ip(xe_ctx *ctx, xn_error **err)
{
	const xe_args *a = ctx->args;
	XN_AUTOFREE char *pif = xe_ref_by_uuid(ctx, "PIF", xe_arg(a, "uuid"), err);
	if (!pif)
		return -1;
	return xe_call_void(ctx->conn, "PIF.reconfigure_ip",
			    json_pack("[ssssss]", pif, xe_arg(a, "mode"), xe_arg(a, "IP") ?: "",
				      xe_arg(a, "netmask") ?: "", xe_arg(a, "gateway") ?: "",
				      xe_arg(a, "DNS") ?: ""),
			    err);
}
