/* rpc.c: the XenAPI client under `xe`: JSON-RPC 2.0 requests posted to
 * /jsonrpc (xenapi.md §1.4) with libcurl, over the daemon's Unix socket
 * (local: the socket grants root without a password) or HTTP(S) to a
 * remote host. One curl handle per process, so calls reuse the
 * connection. Failures come back as xn_error: the XenAPI code and
 * parameters, or XE_CLI_ERROR with a one-line message for transport
 * problems. */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define API_VERSION "2.21"
#define ORIGINATOR "xe"

struct xe_conn {
	xe_target t;          /* its strings point at the copies below */
	char *socket, *host, *username, *password;
	CURL *h;
	struct curl_slist *headers;
	char *url;
	char *where;
	char *session;
	long next_id;
};

char *xe_rpc_request(const char *method, json_t *params, long id)
{
	json_t *p = params ? json_incref(params) : json_array();
	json_t *req = json_pack("{s:s, s:s, s:o, s:I}", "jsonrpc", "2.0", "method", method, "params",
				p, "id", (json_int_t)id);
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return s;
}

/* v2: {"error": {"code": 1, "message": CODE, "data": [params]}};
 * v1: {"error": [CODE, params...]}. */
static int reply_error(json_t *error, xn_error **err)
{
	XN_AUTOSTRV char **params = xn_strv_new();
	const char *code = NULL;
	json_t *data = NULL;
	if (json_is_object(error)) {
		code = json_string_value(json_object_get(error, "message"));
		data = json_object_get(error, "data");
	} else if (json_is_array(error)) {
		code = json_string_value(json_array_get(error, 0));
		data = error;
	}
	size_t i;
	json_t *e;
	json_array_foreach(data, i, e) {
		if (data == error && i == 0)
			continue;
		XN_AUTOFREE char *s = json_is_string(e) ? xn_strdup(json_string_value(e))
							: json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
		xn_strv_push(&params, s ? s : "");
	}
	return xn_failv(err, code ? code : "INTERNAL_ERROR", params);
}

json_t *xe_rpc_reply(const char *body, size_t len, xn_error **err)
{
	json_error_t jerr;
	json_t *reply = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(reply)) {
		json_decref(reply);
		xe_fail(err, "malformed JSON-RPC reply: %s", jerr.text);
		return NULL;
	}
	json_t *error = json_object_get(reply, "error");
	json_t *result = json_object_get(reply, "result");
	if (error && !json_is_null(error)) {
		reply_error(error, err);
		result = NULL;
	} else if (!result) {
		xe_fail(err, "malformed JSON-RPC reply: no result");
	}
	json_incref(result);
	json_decref(reply);
	return result;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	xn_buf_append(ud, p, size * n);
	return size * n;
}

xe_conn *xe_conn_new(const xe_target *t)
{
	static bool curl_ready;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	xe_conn *c = xn_calloc(1, sizeof(*c));
	c->t.socket = c->socket = xn_strdup(t->socket);
	c->t.host = c->host = xn_strdup(t->host);
	c->t.port = t->port;
	c->t.tls = t->tls;
	c->t.username = c->username = xn_strdup(t->username);
	c->t.password = c->password = xn_strdup(t->password);
	c->next_id = 1;
	if (t->socket) {
		c->url = xn_strdup("http://localhost/jsonrpc");
		c->where = xn_asprintf("xeniad at %s", t->socket);
	} else {
		c->url = xn_asprintf("%s://%s:%d/jsonrpc", t->tls ? "https" : "http", t->host, t->port);
		c->where = xn_asprintf("%s:%d", t->host, t->port);
	}
	c->h = curl_easy_init();
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c->h, CURLOPT_URL, c->url);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_write);
	if (t->socket)
		curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, t->socket);
	/* Hosts serve self-signed certificates for now, so the certificate
	 * is not verified; the traffic is encrypted, not authenticated. */
	curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, 0L);
	return c;
}

/* One POST; the reply body in *body. */
static int post(xe_conn *c, const char *req, xn_buf *body, xn_error **err)
{
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, cerr);
	CURLcode rc = curl_easy_perform(c->h);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, NULL);
	if (rc != CURLE_OK) {
		long oserr = 0;
		curl_easy_getinfo(c->h, CURLINFO_OS_ERRNO, &oserr);
		if (rc == CURLE_COULDNT_CONNECT && oserr)
			return xe_fail(err, "cannot reach %s: %s", c->where, strerror((int)oserr));
		return xe_fail(err, "cannot reach %s: %s", c->where, cerr[0] ? cerr : curl_easy_strerror(rc));
	}
	long status = 0;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return xe_fail(err, "%s answered HTTP %ld to a JSON-RPC call", c->where, status);
	return 0;
}

static json_t *call_raw(xe_conn *c, const char *method, json_t *params, xn_error **err)
{
	XN_AUTOFREE char *req = xe_rpc_request(method, params, c->next_id++);
	json_decref(params);
	xn_buf body = {0};
	json_t *result = NULL;
	if (post(c, req, &body, err) == 0)
		result = xe_rpc_reply(body.data ? body.data : "", body.len, err);
	xn_buf_reset(&body);
	return result;
}

json_t *xe_call(xe_conn *c, const char *method, json_t *params, xn_error **err)
{
	json_t *full = json_array();
	json_array_append_new(full, json_string(c->session ? c->session : ""));
	if (params)
		json_array_extend(full, params);
	json_decref(params);
	return call_raw(c, method, full, err);
}

int xe_conn_login(xe_conn *c, xn_error **err)
{
	const char *user = c->t.socket ? "root" : c->t.username;
	const char *pass = c->t.socket ? "" : c->t.password;
	json_t *params = json_pack("[ssss]", user ? user : "", pass ? pass : "", API_VERSION, ORIGINATOR);
	json_t *session = call_raw(c, "session.login_with_password", params, err);
	if (!session)
		return -1;
	if (!json_is_string(session)) {
		json_decref(session);
		return xe_fail(err, "%s returned no session", c->where);
	}
	c->session = xn_strdup(json_string_value(session));
	json_decref(session);
	return 0;
}

void xe_conn_free(xe_conn *c)
{
	if (!c)
		return;
	if (c->session) {
		XN_AUTOERR xn_error *err = NULL;
		json_decref(xe_call(c, "session.logout", NULL, &err));
	}
	curl_easy_cleanup(c->h);
	curl_slist_free_all(c->headers);
	free(c->socket);
	free(c->host);
	free(c->username);
	free(c->password);
	free(c->url);
	free(c->where);
	free(c->session);
	free(c);
}

const char *xe_conn_session(const xe_conn *c)
{
	return c->session;
}

const xe_target *xe_conn_target(const xe_conn *c)
{
	return &c->t;
}

const char *xe_conn_where(const xe_conn *c)
{
	return c->where;
}

int xe_call_void(xe_conn *c, const char *method, json_t *params, xn_error **err)
{
	json_t *r = xe_call(c, method, params, err);
	json_decref(r);
	return r ? 0 : -1;
}

char *xe_http_get(xe_conn *c, const char *path, size_t *len, xn_error **err)
{
	char *s = curl_easy_escape(NULL, c->session ? c->session : "", 0);
	XN_AUTOFREE char *url = c->t.socket
		? xn_asprintf("http://localhost%s%ssession_id=%s", path, strchr(path, '?') ? "&" : "?", s)
		: xn_asprintf("%s://%s:%d%s%ssession_id=%s", c->t.tls ? "https" : "http", c->t.host,
			      c->t.port, path, strchr(path, '?') ? "&" : "?", s);
	curl_free(s);
	CURL *h = curl_easy_init();
	xn_buf body = {0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	if (c->t.socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->t.socket);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK || status != 200) {
		xn_buf_reset(&body);
		return rc != CURLE_OK ? (xe_fail(err, "cannot reach %s: %s", c->where,
						 curl_easy_strerror(rc)), NULL)
				      : (xe_fail(err, "%s answered HTTP %ld to GET %s", c->where, status,
						 path), NULL);
	}
	*len = body.len;
	return body.data ? xn_buf_steal(&body) : xn_strdup("");
}
