/* cmd_datasource.c: a VM's or the host's data sources (xapi's
 * vm-data-source-list/-query/-record/-forget and host-data-source-*):
 * the records of get_data_sources in xe's record layout, the latest
 * value of one, and switching its archiving on and off. The command's
 * data is the class, "VM" or "host". */
#include <math.h>
#include <string.h>

#include "cli/cli.h"

/* The ref of the VM or host the command is about (caller frees): the
 * one its selectors name; for the host, the only one if none is given. */
static char *subject(xe_ctx *ctx, xn_error **err)
{
	const char *cls = ctx->cmd->data;
	bool host = strcmp(cls, "host") == 0;
	if (host && !xe_arg(ctx->args, "host") && !xe_arg(ctx->args, "uuid")) {
		json_t *all = xe_call(ctx->conn, "host.get_all", NULL, err);
		char *ref = all ? xn_strdup(json_string_value(json_array_get(all, 0))) : NULL;
		json_decref(all);
		return ref;
	}
	xe_rec **recs = xe_select(ctx, xe_class_spec_find(host ? "host" : "vm"),
				  host ? NULL : "is-control-domain=false", err);
	if (!recs)
		return NULL;
	char *ref = xn_strdup(recs[0]->ref);
	xe_recs_free(recs);
	return ref;
}

static const char *limit(double v, char *buf, size_t len)
{
	if (fabs(v) >= 1.7976931348623157e308)
		snprintf(buf, len, "%s", v > 0 ? "inf" : "-inf");
	else
		snprintf(buf, len, "%.3f", v);
	return buf;
}

int xe_cmd_ds_list(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *ref = subject(ctx, err);
	if (!ref)
		return -1;
	XN_AUTOFREE char *method = xn_asprintf("%s.get_data_sources", (const char *)ctx->cmd->data);
	json_t *list = xe_call(ctx->conn, method, json_pack("[s]", ref), err);
	if (!list)
		return -1;
	bool minimal = xe_arg_flag(ctx->args, "minimal");
	size_t i;
	json_t *ds;
	json_array_foreach(list, i, ds) {
		const char *name = json_string_value(json_object_get(ds, "name_label"));
		if (minimal) {
			fprintf(ctx->out, "%s%s", i ? "," : "", name);
			continue;
		}
		char lo[32], hi[32];
		fprintf(ctx->out, "%-26s: %s\n", "name_label ( RO)", name);
		fprintf(ctx->out, "%26s: %s\n", "name_description ( RO)",
			json_string_value(json_object_get(ds, "name_description")));
		fprintf(ctx->out, "%26s: %s\n", "enabled ( RO)",
			json_is_true(json_object_get(ds, "enabled")) ? "true" : "false");
		fprintf(ctx->out, "%26s: %s\n", "standard ( RO)",
			json_is_true(json_object_get(ds, "standard")) ? "true" : "false");
		fprintf(ctx->out, "%26s: %s\n", "min ( RO)",
			limit(json_number_value(json_object_get(ds, "min")), lo, sizeof(lo)));
		fprintf(ctx->out, "%26s: %s\n", "max ( RO)",
			limit(json_number_value(json_object_get(ds, "max")), hi, sizeof(hi)));
		fprintf(ctx->out, "%26s: %s\n\n", "units ( RO)",
			json_string_value(json_object_get(ds, "units")));
	}
	if (minimal)
		fputs("\n", ctx->out);
	json_decref(list);
	return 0;
}

/* <cls>.<verb>(subject, data-source): the result, or NULL. */
static json_t *call_ds(xe_ctx *ctx, const char *verb, xn_error **err)
{
	XN_AUTOFREE char *ref = subject(ctx, err);
	if (!ref)
		return NULL;
	XN_AUTOFREE char *method = xn_asprintf("%s.%s", (const char *)ctx->cmd->data, verb);
	return xe_call(ctx->conn, method, json_pack("[ss]", ref, xe_arg(ctx->args, "data-source")),
		       err);
}

int xe_cmd_ds_query(xe_ctx *ctx, xn_error **err)
{
	json_t *v = call_ds(ctx, "query_data_source", err);
	if (!v)
		return -1;
	fprintf(ctx->out, "%f\n", json_number_value(v));
	json_decref(v);
	return 0;
}

int xe_cmd_ds_record(xe_ctx *ctx, xn_error **err)
{
	json_t *v = call_ds(ctx, "record_data_source", err);
	json_decref(v);
	return v ? 0 : -1;
}

int xe_cmd_ds_forget(xe_ctx *ctx, xn_error **err)
{
	json_t *v = call_ds(ctx, "forget_data_source_archives", err);
	json_decref(v);
	return v ? 0 : -1;
}
