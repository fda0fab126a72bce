/* cmd_user.c: local user accounts (Xenia's own commands; xapi leaves
 * users to external directories): user-add, user-remove, user-list,
 * user-password-change. A local user is a XenAPI subject whose
 * other-config names it and whose roles give its rights; passwords are
 * set through Xenia's subject.xenia_* messages, or by the user with
 * session.change_password. */
#include <string.h>

#include "cli/cli.h"

/* The subject of the local user called name, or NULL with an error. */
static char *find_user(xe_ctx *ctx, const char *name, xn_error **err)
{
	json_t *all = xe_cache_all(ctx->cache, "subject", err);
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) {
		json_t *oc = json_object_get(rec, "other_config");
		if (xn_streq(json_string_value(json_object_get(oc, "subject-name")), name))
			return xn_strdup(ref);
	}
	if (all)
		xe_fail(err, "Error: no user '%s'", name);
	return NULL;
}

int xe_cmd_user_add(xe_ctx *ctx, xn_error **err)
{
	const char *role = xe_arg(ctx->args, "role");
	json_t *subject = xe_call(ctx->conn, "subject.xenia_add_user",
				  json_pack("[sss]", xe_arg(ctx->args, "user-name"),
					    xe_arg(ctx->args, "password"), role ? role : "read-only"),
				  err);
	if (!subject)
		return -1;
	json_t *uuid = xe_call(ctx->conn, "subject.get_uuid", json_pack("[O]", subject), err);
	json_decref(subject);
	if (!uuid)
		return -1;
	fprintf(ctx->out, "%s\n", json_string_value(uuid));
	json_decref(uuid);
	return 0;
}

int xe_cmd_user_remove(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *subject = find_user(ctx, xe_arg(ctx->args, "user-name"), err);
	return subject ? xe_call_void(ctx->conn, "subject.destroy", json_pack("[s]", subject), err) : -1;
}

int xe_cmd_user_list(xe_ctx *ctx, xn_error **err)
{
	json_t *all = xe_cache_all(ctx->cache, "subject", err);
	json_t *roles = all ? xe_cache_all(ctx->cache, "role", err) : NULL;
	if (!roles)
		return -1;
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) {
		json_t *oc = json_object_get(rec, "other_config");
		const char *name = json_string_value(json_object_get(oc, "subject-name"));
		xn_buf rl = {0};
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(rec, "roles"), i, r) {
			json_t *role = json_object_get(roles, json_string_value(r));
			xn_buf_printf(&rl, "%s%s", i ? "; " : "",
				      json_string_value(json_object_get(role, "name_label")));
		}
		if (xe_arg(ctx->args, "minimal")) {
			fprintf(ctx->out, "%s\n", name ? name : "");
		} else {
			fprintf(ctx->out, "uuid ( RO)           : %s\n",
				json_string_value(json_object_get(rec, "uuid")));
			fprintf(ctx->out, "      user-name ( RO): %s\n", name ? name : "");
			fprintf(ctx->out, "          roles (SRO): %s\n\n", rl.data ? rl.data : "");
		}
		xn_buf_reset(&rl);
	}
	return 0;
}

/* new= [old=] [user-name=]: your own password (old= needed), or, as an
 * administrator, another user's (user-name=). */
int xe_cmd_user_password_change(xe_ctx *ctx, xn_error **err)
{
	const char *user = xe_arg(ctx->args, "user-name");
	const char *pw = xe_arg(ctx->args, "new");
	if (user) {
		XN_AUTOFREE char *subject = find_user(ctx, user, err);
		return subject ? xe_call_void(ctx->conn, "subject.xenia_set_password",
					   json_pack("[ss]", subject, pw), err)
			       : -1;
	}
	const char *old = xe_arg(ctx->args, "old");
	if (!old)
		return xe_fail(err, "Required parameter not found: old (or user-name)");
	return xe_call_void(ctx->conn, "session.change_password", json_pack("[ss]", old, pw), err);
}
