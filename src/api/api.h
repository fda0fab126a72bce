/* api.h: the XenAPI as the daemon serves it.
 *
 * A call names a method ("VM.start"), carries a session and positional
 * parameters, and completes exactly once with a result or a XenAPI
 * error, possibly long after it started (handlers are asynchronous; the
 * loop never blocks). The dispatcher checks everything that can be
 * checked from the datamodel before a handler runs: the method exists,
 * the parameter count (MESSAGE_PARAMETER_COUNT_MISMATCH), parameter
 * types (FIELD_TYPE_ERROR), references (HANDLE_INVALID), the session
 * (SESSION_INVALID) and the caller's role (RBAC_PERMISSION_DENIED).
 *
 * Explicit messages are implemented by handlers registered in tables
 * (one per module); accessors (get_record, get_<field>, set_<field>,
 * add_to_<field>, get_all_records, get_by_uuid, ...) are derived from
 * the datamodel for every class. */
#ifndef XN_API_H
#define XN_API_H

#include <jansson.h>

#include "api/http.h"
#include "host/host.h"

typedef struct xn_api xn_api;
typedef struct xn_call xn_call;

/* result and its declared type (for encoders that need types, such as
 * XML-RPC's; NULL when unknown), or err. */
typedef void (*xn_call_done)(void *ud, json_t *result, const xn_type *type,
			     const xn_error *err);

struct xn_call {
	xn_host *host;
	char *method;            /* wire name, without "Async." */
	const xn_message *msg;   /* declared message, NULL for accessors */
	json_t *args;            /* checked parameters after the session */
	char *session;           /* NULL for session-less messages */
	int role;                /* the caller's role */
	bool local;              /* came over the Unix socket */
	char *task;              /* task the operation runs under, if any */
	const xn_type *result_type; /* what the call returns */
	xn_call_done done;
	void *done_ud;
};

typedef void (*xn_api_fn)(xn_call *c);
typedef struct xn_api_method {
	const char *name;        /* "VM.start" */
	xn_api_fn fn;
} xn_api_method;

xn_api *xn_api_new(xn_host *h);
xn_host *xn_api_host(xn_api *api);
void xn_api_free(xn_api *api);
/* Register a table of handlers, ended by {NULL, NULL}. */
void xn_api_register(xn_api *api, const xn_api_method *table);

/* Serve HTTP routes: handler for requests whose method matches and whose
 * path starts with prefix (longest prefix wins). */
void xn_api_route(xn_api *api, const char *http_method, const char *prefix,
		  xn_http_handler fn, void *ud);
/* The same for a route whose handler takes the request as soon as its
 * head is complete and reads the body as a stream (http.h). */
void xn_api_route_stream(xn_api *api, const char *http_method, const char *prefix,
			 xn_http_handler fn, void *ud);
int xn_api_listen(xn_api *api, xn_error **err);
void xn_api_stop(xn_api *api);

/* Run a call. params holds every parameter, the session first (unless
 * the message takes none). done is called exactly once. */
void xn_api_call(xn_api *api, const char *method, json_t *params, bool local,
		 xn_call_done done, void *ud);

/* The same, under an existing task (Async. calls): operations record
 * that task in current_operations instead of making their own. */
void xn_api_call_task(xn_api *api, const char *method, json_t *params, bool local,
		      const char *task, xn_call_done done, void *ud);

/* Complete a call (result taken over; NULL means void). */
void xn_call_return(xn_call *c, json_t *result);
/* Fail a call (error taken over). */
void xn_call_fail(xn_call *c, xn_error *err);
void xn_call_fail_code(xn_call *c, const char *code, ...) __attribute__((sentinel));

json_t *xn_call_arg(xn_call *c, size_t i);
const char *xn_call_arg_str(xn_call *c, size_t i);  /* "" if absent */
bool xn_call_arg_bool(xn_call *c, size_t i);
json_int_t xn_call_arg_int(xn_call *c, size_t i);

/* The session's validity and role, for HTTP handlers that take a
 * session_id (e.g. CONNECT /console). Returns the role or -1. */
int xn_api_session_role(xn_api *api, const char *session_ref);

/* The role of an HTTP request's caller (for GET endpoints such as
 * /rrd_updates): its session_id query parameter, else HTTP basic
 * authentication with a user's name and password, else root on the
 * local socket. -1 with SESSION_INVALID or SESSION_AUTHENTICATION_FAILED
 * (session.c). */
int xn_api_http_role(xn_host *h, xn_http_req *req, xn_error **err);

/* Sessions and users (session.c). */
extern const xn_api_method xn_session_methods[];
int xn_session_check(xn_host *h, const char *ref, int *role, xn_error **err);
/* Start expiring idle sessions (host->session_timeout_ms, default 24 h). */
void xn_sessions_init(xn_host *h);
/* Create the root account on first start (password in DATA/root-password). */
int xn_accounts_init(xn_host *h, xn_error **err);

/* Generic accessors (accessors.c); true if method was one. */
bool xn_accessor_call(xn_call *c, const xn_class *cls, const char *verb);
/* False for the stored classes xapi lists no get_all* messages for
 * (session, user, LVHD): neither served nor in system.listMethods. */
bool xn_class_has_get_all(const xn_class *cls);

/* JSON-RPC over HTTP (jsonrpc.c). */
void xn_jsonrpc_handle(void *api, xn_http_req *req);
/* A decoded JSON-RPC request (everything owned by the struct). */
typedef struct xn_rpc_request {
	char *method;
	json_t *params;
	json_t *id;
	bool v2;
} xn_rpc_request;
/* Decode a JSON-RPC 1.0/2.0 request; -1 if malformed (HTTP 500). */
int xn_jsonrpc_decode(const char *body, size_t len, xn_rpc_request *out);
/* Decode an XML-RPC methodCall: its params, *method set; NULL if
 * malformed. */
json_t *xn_xmlrpc_decode(const char *body, size_t len, char **method);
/* Decode one XML-RPC value standing alone (an XVA's ova.xml), with the
 * same limits as requests; NULL if malformed. */
json_t *xn_xmlrpc_decode_value(const char *xml, size_t len);
/* XML-RPC over HTTP (xmlrpc.c): POST / and anything under it that no
 * longer route claims (/RPC2, /xmlrpc), as xapi does. */
void xn_xmlrpc_handle(void *api, xn_http_req *req);
/* The XML-RPC encoding of a value of type t (t may be NULL), as xapi
 * writes it; appended to out. Used for responses and task results. */
void xn_xmlrpc_value(xn_buf *out, json_t *v, const xn_type *t);

/* Tasks (task.c). A new pending task, added to cs; returns its ref
 * (borrowed from cs). */
const char *xn_task_add(xn_changes *cs, xn_host *h, const char *label);
/* Mark a task finished in cs: success with result (of type type), or
 * failure with err's code and parameters in error_info. */
void xn_task_settle(xn_changes *cs, const char *task, const xn_error *err, json_t *result,
		    const xn_type *type);
/* Remove tasks that finished more than max_age_s seconds ago. */
void xn_tasks_gc(xn_host *h, double max_age_s);
/* task.destroy, task.cancel. */
extern const xn_api_method xn_task_methods[];

/* Events (event.c): start recording commits for event.from. */
void xn_events_init(xn_api *api, xn_host *h);

/* Every method name the API serves (system.listMethods). */
json_t *xn_api_list_methods(xn_api *api);

#endif
