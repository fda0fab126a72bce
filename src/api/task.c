/* task.c: XenAPI task records: made when an operation starts, settled
 * when it ends (api.h). Finished tasks stay visible for a while and are
 * then removed (xn_tasks_gc). */
#include "api/api.h"

#include <string.h>

#include "util/log.h"

const char *xn_task_add(xn_changes *cs, xn_host *h, const char *label)
{
	return xn_changes_add(cs, xn_model_class("task"), NULL,
			      json_pack("{s:s,s:s,s:o,s:s,s:f}", "name_label", label, "status",
					"pending", "created", xn_datetime_now(), "resident_on",
					h->host_ref, "progress", 0.0));
}

/* task.destroy of a pending task asks for this (as xapi records it). */
static bool destroy_requested(json_t *t)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(t, "current_operations"), k, v)
		if (xn_streq(json_string_value(v), "destroy"))
			return true;
	return false;
}

void xn_task_settle(xn_changes *cs, const char *task, const xn_error *err, json_t *result,
		    const xn_type *type)
{
	json_t *t = xn_changes_edit(cs, task);
	if (!t)
		return;
	if (destroy_requested(t)) {
		xn_changes_delete(cs, task);
		return;
	}
	json_object_set_new(t, "status", json_string(err ? "failure" : "success"));
	json_object_set_new(t, "finished", xn_datetime_now());
	json_object_set_new(t, "progress", json_real(1.0));
	if (err) {
		json_t *info = json_pack("[s]", err->code);
		for (size_t i = 0; err->params && err->params[i]; i++)
			json_array_append_new(info, json_string(err->params[i]));
		json_object_set_new(t, "error_info", info);
		return;
	}
	bool is_void = !result || (json_is_string(result) && !*json_string_value(result) &&
				   (!type || type->kind == XN_T_VOID));
	if (is_void)
		return;
	/* xapi stores the XML-RPC form whatever protocol the caller spoke */
	xn_buf b = {0};
	xn_xmlrpc_value(&b, result, type);
	json_object_set_new(t, "result", json_string(b.data ? b.data : ""));
	xn_buf_reset(&b);
}

/* task.destroy(self): a finished task goes at once (clients such as
 * Xen Orchestra's destroy each Async task once they have its result, and
 * watch for its deletion); a pending one when it ends. xapi lets a
 * session destroy its own tasks, and any task with the pool-operator's
 * "task.destroy/any"; tasks here do not record their session, so only
 * that role may. */
static void task_destroy(xn_call *c)
{
	const char *task = xn_call_arg_str(c, 0);
	if (c->role < XN_ROLE_POOL_OPERATOR) {
		xn_call_fail_code(c, "RBAC_PERMISSION_DENIED", "task.destroy/any",
				  "the role of this session does not allow the call", NULL);
		return;
	}
	xn_changes *cs = xn_changes_new(c->host->db);
	json_t *t = xn_changes_edit(cs, task);
	if (t && xn_streq(json_string_value(json_object_get(t, "status")), "pending")) {
		json_t *ops = json_object_get(t, "current_operations");
		if (!json_is_object(ops))
			json_object_set_new(t, "current_operations", ops = json_object());
		json_object_set_new(ops, "task", json_string("destroy"));
	} else
		xn_changes_delete(cs, task);
	xn_error *err = NULL;
	if (xn_db_commit(c->host->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

/* task.create(label, description): a pending task a client names to an
 * operation it starts (an HTTP transfer's task_id=), to follow its
 * progress from the start; the operation settles it. */
static void task_create(xn_call *c)
{
	xn_host *h = c->host;
	xn_changes *cs = xn_changes_new(h->db);
	xn_tasks_gc(h, 600);
	XN_AUTOFREE char *task = xn_strdup(xn_task_add(cs, h, xn_call_arg_str(c, 0)));
	xn_changes_set(cs, task, "name_description", json_string(xn_call_arg_str(c, 1)));
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, json_string(task));
}

static void task_cancel(xn_call *c);

const xn_api_method xn_task_methods[] = {
	{"task.create", task_create},
	{"task.destroy", task_destroy},
	{"task.cancel", task_cancel},
	{NULL, NULL},
};

void xn_tasks_gc(xn_host *h, double max_age_s)
{
	XN_AUTOFREE char *cutoff = xn_datetime_str(xn_wall_time() - max_age_s);
	xn_changes *cs = xn_changes_new(h->db);
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("task")), k, v) {
		const char *status = json_string_value(json_object_get(v, "status"));
		const char *finished = json_string_value(json_object_get(v, "finished"));
		/* datetimes in XenAPI form compare as strings */
		if (!xn_streq(status, "pending") && finished && strcmp(finished, cutoff) < 0)
			xn_changes_delete(cs, k);
	}
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_warn("tasks: cannot remove finished tasks: %s", err->message);
}

/* task.cancel: none of today's operations can stop half-way safely
 * (each is short or commits at its end), so cancelling is refused with
 * the reason; a finished task cannot be cancelled either. */
static void task_cancel(xn_call *c)
{
	const char *task = xn_call_arg_str(c, 0);
	const char *status = xn_db_str(c->host->db, task, "status");
	xn_call_fail_code(c, "OPERATION_NOT_ALLOWED",
			  strcmp(status, "pending") != 0 ? "the task has already finished"
							 : "this operation cannot be cancelled",
			  NULL);
}
