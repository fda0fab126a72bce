/* http_xfer.c: helpers of the streamed transfer routes (http_xfer.h). */
#include "api/http_xfer.h"

#include <string.h>

#include "util/log.h"

int xn_xfer_role(xn_host *h, xn_http_req *req, xn_error **err)
{
	const char *session = xn_http_req_query(req, "session_id");
	if (!session && xn_http_req_is_local(req))
		return XN_ROLE_POOL_ADMIN;
	int role;
	if (!session)
		return xn_fail(err, "SESSION_INVALID", "", NULL);
	if (xn_session_check(h, session, &role, err) < 0)
		return -1;
	return role;
}

char *xn_xfer_task(xn_host *h, xn_http_req *req, const char *label, xn_error **err)
{
	const char *t = xn_http_req_query(req, "task_id");
	if (t) {
		if (xn_db_class_of(h->db, t) != xn_model_class("task") ||
		    strcmp(xn_db_str(h->db, t, "status"), "pending") != 0) {
			xn_fail(err, "HANDLE_INVALID", "task", t, NULL);
			return NULL;
		}
		return xn_strdup(t);
	}
	xn_tasks_gc(h, 600);
	xn_changes *cs = xn_changes_new(h->db);
	char *task = xn_strdup(xn_task_add(cs, h, label));
	if (xn_db_commit(h->db, cs, err) < 0) {
		free(task);
		return NULL;
	}
	return task;
}

char *xn_xfer_task_header(const char *task)
{
	return task ? xn_asprintf("task-id: %s\r\n", task) : NULL;
}

static int status_of(const char *code)
{
	static const struct {
		const char *code;
		int status;
	} map[] = {
		{"SESSION_INVALID", 403},      {"RBAC_PERMISSION_DENIED", 403},
		{"PERMISSION_DENIED", 403},
		{"HANDLE_INVALID", 404},       {"UUID_INVALID", 404},
		{"INVALID_VALUE", 400},        {"VDI_TOO_SMALL", 400},
		{"IMPORT_ERROR_GENERIC", 400}, {"IMPORT_INCOMPATIBLE_VERSION", 400},
		{"SR_FULL", 400},              {"DEFAULT_SR_NOT_FOUND", 400},
		{"VDI_IN_USE", 409},           {"VDI_READONLY", 409},
		{"OTHER_OPERATION_IN_PROGRESS", 409}, {"VM_BAD_POWER_STATE", 409},
	};
	for (size_t i = 0; i < XN_ARRAY_LEN(map); i++)
		if (strcmp(map[i].code, code) == 0)
			return map[i].status;
	return 500;
}

void xn_xfer_answer_error(xn_http_req *req, const char *task, const xn_error *err)
{
	json_t *body = json_pack("[s]", err->code);
	for (size_t i = 0; err->params && err->params[i]; i++)
		json_array_append_new(body, json_string(err->params[i]));
	XN_AUTOFREE char *text = json_dumps(body, JSON_COMPACT);
	XN_AUTOFREE char *hdr = xn_xfer_task_header(task);
	json_decref(body);
	xn_http_respond_headers(req, status_of(err->code), "application/json", hdr, text,
				strlen(text));
}

void xn_xfer_progress(xn_host *h, const char *task, double progress)
{
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_set(cs, task, "progress", json_real(progress));
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_debug("transfer: task progress: %s", err->message);
}

xn_error *xn_xfer_cut_short(int64_t received)
{
	XN_AUTOFREE char *msg = xn_asprintf("the upload ended after %lld bytes", (long long)received);
	xn_error *err = NULL;
	xn_fail(&err, "IMPORT_ERROR_GENERIC", msg, NULL);
	return err;
}

void xn_xfer_finish_vm(xn_host *h, xn_http_req *req, const char *task, const xn_error *err,
		       const char *vm)
{
	xn_changes *cs = xn_changes_new(h->db);
	json_t *result = json_pack("[s]", vm ? vm : "");
	xn_task_settle(cs, task, err, result, xn_type_parse("VM ref set"));
	json_decref(result);
	XN_AUTOERR xn_error *cerr = NULL;
	if (xn_db_commit(h->db, cs, &cerr) < 0)
		xn_warn("import: cannot settle task %s: %s", task, cerr->message);
	if (req && err) {
		xn_xfer_answer_error(req, task, err);
	} else if (req) {
		XN_AUTOFREE char *hdr = xn_xfer_task_header(task);
		xn_http_respond_headers(req, 200, "text/plain", hdr, vm, strlen(vm));
	}
}
