/* dispatch.c: from a method name and parameters to a running handler,
 * with every check the datamodel allows made first (api.h). */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/tls.h"
#include "util/log.h"
#include "util/uuid.h"

struct route {
	char *method, *prefix;
	xn_http_handler fn;
	void *ud;
	bool stream;           /* called with the head; reads the body itself */
};

struct xn_api {
	xn_host *host;
	json_t *handlers;      /* wire name -> (xn_api_fn) as integer */
	xn_http_server *http;
	xn_tls_ctx *tls;
	struct route *routes;
	size_t nroutes;
};

static void http_dispatch(void *ud, xn_http_req *req);
static bool http_streamed(void *ud, const xn_http_req *req);

/* Browsers ask before cross-origin POSTs; xapi allows any origin. */
static void preflight(void *ud, xn_http_req *req)
{
	(void)ud;
	xn_http_respond_preflight(req);
}

xn_api *xn_api_new(xn_host *h)
{
	xn_api *api = xn_calloc(1, sizeof(*api));
	api->host = h;
	api->handlers = json_object();
	api->http = xn_http_server_new(h->loop, http_dispatch, api);
	xn_http_server_set_stream_filter(api->http, http_streamed);
	xn_api_register(api, xn_session_methods);
	xn_api_register(api, xn_task_methods);
	xn_api_route(api, "POST", "/jsonrpc", xn_jsonrpc_handle, api);
	xn_api_route(api, "POST", "/", xn_xmlrpc_handle, api);
	xn_api_route(api, "OPTIONS", "/", preflight, api);
	return api;
}

xn_host *xn_api_host(xn_api *api)
{
	return api->host;
}

void xn_api_free(xn_api *api)
{
	if (!api)
		return;
	json_decref(api->handlers);
	for (size_t i = 0; i < api->nroutes; i++) {
		free(api->routes[i].method);
		free(api->routes[i].prefix);
	}
	free(api->routes);
	free(api);
}

void xn_api_register(xn_api *api, const xn_api_method *table)
{
	for (const xn_api_method *m = table; m->name; m++)
		json_object_set_new(api->handlers, m->name,
				    json_integer((json_int_t)(uintptr_t)m->fn));
}

void xn_api_route(xn_api *api, const char *http_method, const char *prefix,
		  xn_http_handler fn, void *ud)
{
	api->routes = xn_realloc(api->routes, (api->nroutes + 1) * sizeof(struct route));
	api->routes[api->nroutes++] = (struct route){xn_strdup(http_method),
						      xn_strdup(prefix), fn, ud, false};
}

void xn_api_route_stream(xn_api *api, const char *http_method, const char *prefix,
			 xn_http_handler fn, void *ud)
{
	xn_api_route(api, http_method, prefix, fn, ud);
	api->routes[api->nroutes - 1].stream = true;
}

/* Longest matching prefix wins, as in xapi's HTTP server. */
static const struct route *find_route(xn_api *api, const xn_http_req *req)
{
	const struct route *best = NULL;
	const char *path = xn_http_req_path(req);
	for (size_t i = 0; i < api->nroutes; i++) {
		const struct route *r = &api->routes[i];
		if (strcmp(r->method, xn_http_req_method(req)) != 0 ||
		    !xn_str_has_prefix(path, r->prefix))
			continue;
		if (!best || strlen(r->prefix) > strlen(best->prefix))
			best = r;
	}
	return best;
}

static bool http_streamed(void *ud, const xn_http_req *req)
{
	const struct route *r = find_route(ud, req);
	return r && r->stream;
}

static void http_dispatch(void *ud, xn_http_req *req)
{
	const struct route *best = find_route(ud, req);
	if (!best) {
		static const char msg[] = "<html><body><h1>HTTP 404 Not Found</h1></body></html>";
		xn_http_respond(req, 404, "text/html", msg, sizeof(msg) - 1);
		return;
	}
	best->fn(best->ud, req);
}

int xn_api_listen(xn_api *api, xn_error **err)
{
	if (xn_http_listen_unix(api->http, api->host->socket_path, err) < 0)
		return -1;
	xn_host *h = api->host;
	if (!h->listen)
		return 0;
	if (h->listen_plain) {
		/* Plain HTTP only where nobody else can listen in. */
		if (!xn_str_has_prefix(h->listen, "127.") && !xn_str_has_prefix(h->listen, "[::1]"))
			return xn_fail_internal(err, "plain HTTP is only allowed on loopback, not '%s'",
						h->listen);
	} else {
		XN_AUTOFREE char *pem = xn_asprintf("%s/xapi-ssl.pem", h->data_dir);
		char cn[256] = "xenia";
		gethostname(cn, sizeof(cn) - 1);
		api->tls = xn_tls_ctx_new(pem, cn, err);
		if (!api->tls)
			return -1;
	}
	return xn_http_listen_tcp(api->http, h->listen, api->tls, err);
}

void xn_api_stop(xn_api *api)
{
	xn_http_server_close(api->http);
	api->http = NULL;
}

/* ---- calls ---------------------------------------------------------- */

static void call_free(xn_call *c)
{
	free(c->method);
	json_decref(c->args);
	free(c->session);
	free(c->task);
	free(c);
}

void xn_call_return(xn_call *c, json_t *result)
{
	if (!result)
		result = json_string("");
	c->done(c->done_ud, result, c->result_type, NULL);
	json_decref(result);
	call_free(c);
}

void xn_call_fail(xn_call *c, xn_error *err)
{
	if (!err)
		xn_fail_internal(&err, "%s failed without an error", c->method);
	if (strcmp(err->code, "INTERNAL_ERROR") == 0)
		xn_warn("api: %s: %s", c->method, err->message);
	c->done(c->done_ud, NULL, NULL, err);
	xn_error_free(err);
	call_free(c);
}

void xn_call_fail_code(xn_call *c, const char *code, ...)
{
	xn_error *err = NULL;
	va_list ap;
	va_start(ap, code);
	xn_fail_va(&err, code, ap);
	va_end(ap);
	xn_call_fail(c, err);
}

json_t *xn_call_arg(xn_call *c, size_t i)
{
	return json_array_get(c->args, i);
}

const char *xn_call_arg_str(xn_call *c, size_t i)
{
	const char *s = json_string_value(xn_call_arg(c, i));
	return s ? s : "";
}

bool xn_call_arg_bool(xn_call *c, size_t i)
{
	return json_is_true(xn_call_arg(c, i));
}

json_int_t xn_call_arg_int(xn_call *c, size_t i)
{
	return json_integer_value(xn_call_arg(c, i));
}

int xn_api_session_role(xn_api *api, const char *session_ref)
{
	int role;
	XN_AUTOERR xn_error *err = NULL;
	if (xn_session_check(api->host, session_ref, &role, &err) < 0)
		return -1;
	return role;
}

/* Check one parameter against its declared type; references to stored
 * classes must name a live object of that class (or be null). */
static json_t *check_param(xn_call *c, const xn_param *p, json_t *v, xn_error **err)
{
	json_t *out = xn_value_check(p->type, v, p->name, err);
	if (!out || p->type->kind != XN_T_REF)
		return out;
	const char *ref = json_string_value(out);
	const xn_class *want = xn_model_class(p->type->name);
	if (!want || (want->flags & XN_CLS_RECORD_ONLY) || xn_ref_is_null(ref))
		return out;
	if (xn_db_class_of(c->host->db, ref) != want) {
		xn_fail(err, "HANDLE_INVALID", want->name, ref, NULL);
		json_decref(out);
		return NULL;
	}
	return out;
}

static int check_params(xn_call *c, json_t *given, xn_error **err)
{
	const xn_message *m = c->msg;
	size_t n = json_array_size(given);
	if (n < m->nrequired || n > m->nparams) {
		XN_AUTOFREE char *want = xn_asprintf("%zu", m->nrequired);
		XN_AUTOFREE char *got = xn_asprintf("%zu", n);
		return xn_fail(err, "MESSAGE_PARAMETER_COUNT_MISMATCH", c->method, want, got, NULL);
	}
	c->args = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *v = check_param(c, &m->params[i], json_array_get(given, i), err);
		if (!v)
			return -1;
		json_array_append_new(c->args, v);
	}
	return 0;
}

static xn_api_fn handler_of(xn_api *api, const char *method)
{
	json_t *h = json_object_get(api->handlers, method);
	return h ? (xn_api_fn)(uintptr_t)json_integer_value(h) : NULL;
}

/* Split "VM.start" into its class and message. */
static const xn_class *method_class(const char *method, const char **verb)
{
	const char *dot = strchr(method, '.');
	if (!dot)
		return NULL;
	XN_AUTOFREE char *cname = xn_strndup(method, (size_t)(dot - method));
	const xn_class *c = xn_model_class(cname);
	if (!c || ((c->flags & (XN_CLS_INTERNAL | XN_CLS_RECORD_ONLY)) && strcmp(cname, "event") != 0))
		return NULL;
	*verb = dot + 1;
	return c;
}

/* ---- Async. -------------------------------------------------------- *
 * Async.<method> returns a task at once and runs the call under it; the
 * task ends with the call: status, result as xapi's XML-RPC fragment
 * (clients parse it that way whatever protocol they speak), error_info. */

struct async {
	xn_host *h;
	char *task;
};

static void async_done(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	struct async *a = ud;
	xn_changes *cs = xn_changes_new(a->h->db);
	xn_task_settle(cs, a->task, err, result, type);
	XN_AUTOERR xn_error *cerr = NULL;
	if (xn_db_commit(a->h->db, cs, &cerr) < 0)
		xn_warn("api: cannot finish task %s: %s", a->task, cerr->message);
	free(a->task);
	free(a);
}

static void run_async(xn_api *api, const char *method, json_t *params, bool local,
		      xn_call_done done, void *ud)
{
	xn_error *err = NULL;
	int role;
	const char *sref = json_string_value(json_array_get(params, 0));
	if (xn_session_check(api->host, sref, &role, &err) < 0) {
		done(ud, NULL, NULL, err);
		xn_error_free(err);
		return;
	}
	xn_tasks_gc(api->host, 600);
	xn_changes *cs = xn_changes_new(api->host->db);
	XN_AUTOFREE char *label = xn_asprintf("Async.%s", method);
	const char *task = xn_task_add(cs, api->host, label);
	struct async *a = xn_calloc(1, sizeof(*a));
	a->h = api->host;
	a->task = xn_strdup(task);
	if (xn_db_commit(api->host->db, cs, &err) < 0) {
		done(ud, NULL, NULL, err);
		xn_error_free(err);
		free(a->task);
		free(a);
		return;
	}
	json_t *ref = json_string(a->task);
	done(ud, ref, xn_type_parse("task ref"), NULL);
	json_decref(ref);
	xn_api_call_task(api, method, params, local, a->task, async_done, a);
}

void xn_api_call(xn_api *api, const char *method, json_t *params, bool local,
		 xn_call_done done, void *ud)
{
	if (xn_str_has_prefix(method, "Async.")) {
		run_async(api, method + 6, params, local, done, ud);
		return;
	}
	xn_api_call_task(api, method, params, local, NULL, done, ud);
}

void xn_api_call_task(xn_api *api, const char *method, json_t *params, bool local,
		      const char *task, xn_call_done done, void *ud)
{
	xn_call *c = xn_calloc(1, sizeof(*c));
	c->host = api->host;
	c->method = xn_strdup(method);
	c->local = local;
	c->done = done;
	c->done_ud = ud;
	c->role = XN_ROLE_NONE;
	c->task = xn_strdup(task);
	xn_error *err = NULL;
	if (strcmp(method, "system.listMethods") == 0) {
		c->result_type = xn_type_parse("string set");
		xn_call_return(c, xn_api_list_methods(api));
		return;
	}
	const char *verb = NULL;
	const xn_class *cls = method_class(method, &verb);
	if (!cls) {
		xn_call_fail_code(c, "MESSAGE_METHOD_UNKNOWN", method, NULL);
		return;
	}
	c->msg = xn_class_message(cls, verb);
	if (c->msg)
		c->result_type = c->msg->result;
	xn_api_fn fn = handler_of(api, method);
	bool needs_session = !c->msg || !(c->msg->flags & XN_MSG_NO_SESSION);
	json_t *rest = json_array();
	for (size_t i = needs_session ? 1 : 0; i < json_array_size(params); i++)
		json_array_append(rest, json_array_get(params, i));
	if (needs_session) {
		const char *sref = json_string_value(json_array_get(params, 0));
		if (!sref) {
			json_decref(rest);
			xn_call_fail_code(c, "SESSION_INVALID", "", NULL);
			return;
		}
		c->session = xn_strdup(sref);
		if (xn_session_check(api->host, sref, &c->role, &err) < 0) {
			json_decref(rest);
			xn_call_fail(c, err);
			return;
		}
	}
	if (c->msg && (fn || (c->msg->flags & XN_MSG_IMPLICIT))) {
		if (c->role < c->msg->role && needs_session) {
			json_decref(rest);
			xn_call_fail_code(c, "RBAC_PERMISSION_DENIED", method,
					  "the role of this session does not allow the call", NULL);
			return;
		}
		if (check_params(c, rest, &err) < 0) {
			json_decref(rest);
			xn_call_fail(c, err);
			return;
		}
		json_decref(rest);
		if (fn) {
			fn(c);
			return;
		}
	} else {
		c->args = rest;
		if (fn && !c->msg) {
			/* a handler standing in for a generated getter (computed
			 * fields such as session.rbac_permissions): readable by all */
			fn(c);
			return;
		}
	}
	if (!xn_accessor_call(c, cls, verb))
		xn_call_fail_code(c, c->msg ? "NOT_IMPLEMENTED" : "MESSAGE_METHOD_UNKNOWN", method,
				  NULL);
}

/* Accessor verbs every stored class answers, and per-field ones. */
json_t *xn_api_list_methods(xn_api *api)
{
	json_t *names = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(api->handlers, k, v) json_array_append_new(names, json_string(k));
	static const char *verbs[] = {"get_record", "get_all", "get_all_records",
				      "get_all_records_where", "get_all_where", "get_by_uuid",
				      NULL};
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		const xn_class *c = xn_model_class_at(i);
		if (c->flags & (XN_CLS_INTERNAL | XN_CLS_RECORD_ONLY))
			continue;
		for (size_t j = 0; verbs[j]; j++)
			if (xn_class_has_get_all(c) || !xn_str_has_prefix(verbs[j], "get_all"))
				json_array_append_new(names, json_sprintf("%s.%s", c->name, verbs[j]));
		if (c->name_label)
			json_array_append_new(names, json_sprintf("%s.get_by_name_label", c->name));
		for (size_t j = 0; j < c->nfields; j++) {
			const xn_field *f = &c->fields[j];
			json_array_append_new(names, json_sprintf("%s.get_%s", c->name, f->name));
			if (f->qualifier != XN_RW)
				continue;
			json_array_append_new(names, json_sprintf("%s.set_%s", c->name, f->name));
			if (f->type->kind == XN_T_MAP) {
				json_array_append_new(names, json_sprintf("%s.add_to_%s", c->name, f->name));
				json_array_append_new(names, json_sprintf("%s.remove_from_%s", c->name, f->name));
			}
		}
	}
	return names;
}
