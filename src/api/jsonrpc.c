/* jsonrpc.c: JSON-RPC 1.0 and 2.0 on POST /jsonrpc, as xapi speaks them
 * (reference/xenapi.md §1.4): version from the "jsonrpc" member, ids
 * that are strings or integers, errors as [code, params...] (v1) or
 * {code: 1, message: code, data: params} (v2). */
#include "api/api.h"

#include <string.h>

struct rpc {
	xn_http_req *req;
	xn_db *db;
	json_t *id;
	bool v2;
};

/* Stored records (get_record, get_all_records) are answered from the
 * store's cached JSON text instead of being serialised again. Returns
 * the result's text (caller frees) or NULL when it is not such a value. */
static char *cached_result(xn_db *db, json_t *result, const xn_type *type)
{
	if (!type || !json_is_object(result))
		return NULL;
	if (type->kind == XN_T_RECORD) {
		const xn_class *c = xn_model_class(type->name);
		const char *uuid = json_string_value(json_object_get(result, "uuid"));
		const char *ref = c ? xn_db_ref_by_uuid(db, c, uuid) : NULL;
		const char *text = xn_db_record_text(db, ref, result);
		return text ? xn_strdup(text) : NULL;
	}
	if (type->kind != XN_T_MAP || type->val->kind != XN_T_RECORD)
		return NULL;
	const xn_class *c = xn_model_class(type->val->name);
	if (!c || xn_db_all(db, c) != result)
		return NULL;
	xn_buf b = {0};
	xn_buf_puts(&b, "{");
	const char *ref;
	json_t *rec;
	bool first = true;
	json_object_foreach(result, ref, rec) {
		const char *text = xn_db_record_text(db, ref, rec);
		if (!text) {
			xn_buf_reset(&b);
			return NULL;
		}
		xn_buf_printf(&b, "%s\"%s\":%s", first ? "" : ",", ref, text);
		first = false;
	}
	xn_buf_puts(&b, "}");
	return xn_buf_steal(&b);
}

static void respond_json(xn_http_req *req, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	xn_http_respond(req, 200, "application/json", text, strlen(text));
	free(text);
}

static void reply(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	struct rpc *r = ud;
	XN_AUTOFREE char *text = err ? NULL : cached_result(r->db, result, type);
	if (text) {
		XN_AUTOFREE char *id = json_dumps(r->id, JSON_ENCODE_ANY | JSON_COMPACT);
		xn_buf b = {0};
		xn_buf_printf(&b, r->v2 ? "{\"jsonrpc\":\"2.0\",\"result\":" : "{\"result\":");
		xn_buf_puts(&b, text);
		xn_buf_printf(&b, r->v2 ? ",\"id\":%s}" : ",\"error\":null,\"id\":%s}", id);
		xn_http_respond(r->req, 200, "application/json", b.data, b.len);
		xn_buf_reset(&b);
		json_decref(r->id);
		free(r);
		return;
	}
	json_t *body = json_object();
	if (r->v2)
		json_object_set_new(body, "jsonrpc", json_string("2.0"));
	if (err) {
		json_t *params = json_array();
		for (size_t i = 0; err->params && err->params[i]; i++)
			json_array_append_new(params, json_string(err->params[i]));
		if (r->v2) {
			json_object_set_new(body, "error",
					    json_pack("{s:i,s:s,s:o}", "code", 1, "message",
						      err->code, "data", params));
		} else {
			json_array_insert_new(params, 0, json_string(err->code));
			json_object_set_new(body, "result", json_null());
			json_object_set_new(body, "error", params);
		}
	} else {
		json_object_set(body, "result", result);
		if (!r->v2)
			json_object_set_new(body, "error", json_null());
	}
	json_object_set(body, "id", r->id);
	respond_json(r->req, body);
	json_decref(body);
	json_decref(r->id);
	free(r);
}

static void malformed(xn_http_req *req)
{
	static const char msg[] = "<html><body><h1>HTTP 500 Internal Server Error</h1>"
				  "Malformed method request</body></html>";
	xn_http_respond(req, 500, "text/html", msg, sizeof(msg) - 1);
}

int xn_jsonrpc_decode(const char *body, size_t len, xn_rpc_request *out)
{
	memset(out, 0, sizeof(*out));
	json_t *msg = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	json_t *ver = json_object_get(msg, "jsonrpc");
	bool v2 = json_is_string(ver) && strcmp(json_string_value(ver), "2.0") == 0;
	bool id_ok = json_is_string(id) || json_is_integer(id);
	if (!json_is_object(msg) || !method || !id_ok || (ver && !v2) ||
	    (!v2 && !json_is_array(params)) ||
	    (params && !json_is_array(params) && !json_is_object(params))) {
		json_decref(msg);
		return -1;
	}
	if (json_is_array(params))
		out->params = json_incref(params);
	else if (params)
		out->params = json_pack("[O]", params);
	else
		out->params = json_array();
	out->method = xn_strdup(method);
	out->id = json_incref(id);
	out->v2 = v2;
	json_decref(msg);
	return 0;
}

void xn_jsonrpc_handle(void *ud, xn_http_req *req)
{
	xn_api *api = ud;
	size_t len;
	const char *body = xn_http_req_body(req, &len);
	xn_rpc_request rq;
	if (xn_jsonrpc_decode(body, len, &rq) < 0) {
		malformed(req);
		return;
	}
	struct rpc *r = xn_calloc(1, sizeof(*r));
	r->req = req;
	r->id = rq.id;
	r->v2 = rq.v2;
	r->db = xn_api_host(api)->db;
	xn_api_call(api, rq.method, rq.params, xn_http_req_is_local(req), reply, r);
	json_decref(rq.params);
	free(rq.method);
}
