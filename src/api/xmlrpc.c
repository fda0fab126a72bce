/* xmlrpc.c: XML-RPC as xapi speaks it (reference/xenapi.md §1.2-1.3).
 *
 * Requests are parsed with libxml2 (no network, no entity substitution,
 * bounded depth); any value form a client may send is accepted: bare
 * text or <string>, <int>/<i4>/<i8>, <boolean>, <double>,
 * <dateTime.iso8601>, arrays and structs. Responses follow xapi's
 * encoding, driven by the declared type of the result: ints and strings
 * as bare <value>text</value>, booleans, doubles and datetimes tagged,
 * every answer wrapped in a Status/Value (or Status/ErrorDescription)
 * struct, except system.listMethods which answers bare. */
#include "api/api.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

/* ---- decoding ---------------------------------------------------------- */

static bool named(xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNode *first_elem(xmlNode *n)
{
	for (; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE)
			return n;
	return NULL;
}

static char *text_of(xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	char *s = xn_strdup(t ? (const char *)t : "");
	xmlFree(t);
	return s;
}

static json_t *decode_value(xmlNode *value, int depth);

static json_t *decode_typed(xmlNode *t, int depth)
{
	XN_AUTOFREE char *text = NULL;
	const char *n = (const char *)t->name;
	if (strcmp(n, "string") == 0 || strcmp(n, "dateTime.iso8601") == 0) {
		text = text_of(t);
		return json_string(text);
	}
	if (strcmp(n, "int") == 0 || strcmp(n, "i4") == 0 || strcmp(n, "i8") == 0) {
		text = text_of(t);
		char *end;
		long long v = strtoll(text, &end, 10);
		return *text && !*end ? json_integer(v) : NULL;
	}
	if (strcmp(n, "boolean") == 0) {
		text = text_of(t);
		return json_boolean(strcmp(text, "1") == 0);
	}
	if (strcmp(n, "double") == 0) {
		text = text_of(t);
		char *end;
		double d = strtod(text, &end);
		return *text && !*end ? json_real(d) : NULL;
	}
	if (strcmp(n, "nil") == 0)
		return json_null();
	if (strcmp(n, "array") == 0) {
		xmlNode *data = first_elem(t->children);
		if (!named(data, "data"))
			return NULL;
		json_t *a = json_array();
		for (xmlNode *v = first_elem(data->children); v; v = first_elem(v->next)) {
			json_t *e = named(v, "value") ? decode_value(v, depth + 1) : NULL;
			if (!e) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, e);
		}
		return a;
	}
	if (strcmp(n, "struct") == 0) {
		json_t *o = json_object();
		for (xmlNode *m = first_elem(t->children); m; m = first_elem(m->next)) {
			xmlNode *name = named(m, "member") ? first_elem(m->children) : NULL;
			xmlNode *val = name ? first_elem(name->next) : NULL;
			json_t *e = named(name, "name") && named(val, "value")
					    ? decode_value(val, depth + 1)
					    : NULL;
			if (!e) {
				json_decref(o);
				return NULL;
			}
			XN_AUTOFREE char *key = text_of(name);
			json_object_set_new(o, key, e);
		}
		return o;
	}
	return NULL;
}

static json_t *decode_value(xmlNode *value, int depth)
{
	if (depth > MAX_DEPTH)
		return NULL;
	xmlNode *t = first_elem(value->children);
	if (!t) {
		XN_AUTOFREE char *text = text_of(value);
		return json_string(text); /* untyped: a string */
	}
	return decode_typed(t, depth);
}

json_t *xn_xmlrpc_decode(const char *body, size_t len, char **method)
{
	/* No network access, no entity substitution (entities stay
	 * unexpanded), no DTD loading: nothing from outside the body. */
	if (len > XN_HTTP_MAX_BODY)
		return NULL;
	xmlDoc *doc = xmlReadMemory(body, (int)len, "request.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return NULL;
	json_t *params = NULL;
	xmlNode *root = xmlDocGetRootElement(doc);
	xmlNode *mname = named(root, "methodCall") ? first_elem(root->children) : NULL;
	if (!named(mname, "methodName") || doc->intSubset)
		goto out;
	*method = text_of(mname);
	params = json_array();
	xmlNode *ps = first_elem(mname->next);
	for (xmlNode *p = ps && named(ps, "params") ? first_elem(ps->children) : NULL; p;
	     p = first_elem(p->next)) {
		xmlNode *v = named(p, "param") ? first_elem(p->children) : NULL;
		json_t *e = named(v, "value") ? decode_value(v, 0) : NULL;
		if (!e) {
			json_decref(params);
			params = NULL;
			free(*method);
			*method = NULL;
			goto out;
		}
		json_array_append_new(params, e);
	}
out:
	xmlFreeDoc(doc);
	return params;
}

json_t *xn_xmlrpc_decode_value(const char *xml, size_t len)
{
	if (len > XN_HTTP_MAX_BODY)
		return NULL;
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "value.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return NULL;
	xmlNode *root = xmlDocGetRootElement(doc);
	json_t *v = named(root, "value") && !doc->intSubset ? decode_value(root, 0) : NULL;
	xmlFreeDoc(doc);
	return v;
}

/* ---- encoding ---------------------------------------------------------- */

/* Escape > < & " and drop control characters other than TAB, LF, CR. */
static void put_text(xn_buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		switch (ch) {
		case '<': xn_buf_puts(out, "&lt;"); break;
		case '>': xn_buf_puts(out, "&gt;"); break;
		case '&': xn_buf_puts(out, "&amp;"); break;
		case '"': xn_buf_puts(out, "&quot;"); break;
		default:
			if (ch >= 0x20 || ch == '\t' || ch == '\n' || ch == '\r')
				xn_buf_append(out, s, 1);
		}
	}
}

static const xn_type *field_type(const xn_type *rec, const char *name)
{
	const xn_class *c = rec ? xn_model_class(rec->name) : NULL;
	const xn_field *f = c ? xn_class_field(c, name) : NULL;
	return f ? f->type : NULL;
}

/* event.from's batch, as xapi's Event_types.rpc_of_event_from builds it:
 * each snapshot typed as a record of its class (datetimes tagged, as in
 * get_record), and valid_ref_counts as int32s, which XML-RPC tags <i4>
 * (unlike XenAPI ints; clients compare them with numbers). */
static void put_event_batch(xn_buf *out, json_t *v)
{
	xn_buf_puts(out, "<value><struct>");
	const char *k;
	json_t *e;
	json_object_foreach(v, k, e) {
		xn_buf_printf(out, "<member><name>%s</name>", k);
		if (strcmp(k, "valid_ref_counts") == 0 && json_is_object(e)) {
			xn_buf_puts(out, "<value><struct>");
			const char *cls;
			json_t *n;
			json_object_foreach(e, cls, n)
				xn_buf_printf(out, "<member><name>%s</name><value><i4>%lld</i4></value></member>",
					      cls, (long long)json_integer_value(n));
			xn_buf_puts(out, "</struct></value>");
		} else if (strcmp(k, "events") == 0 && json_is_array(e)) {
			xn_buf_puts(out, "<value><array><data>");
			size_t i;
			json_t *ev;
			json_array_foreach(e, i, ev) {
				const xn_class *c = xn_model_class_ci(
					json_string_value(json_object_get(ev, "class")));
				XN_AUTOFREE char *rec = c ? xn_asprintf("%s record", c->name) : NULL;
				xn_buf_puts(out, "<value><struct>");
				const char *f;
				json_t *fv;
				json_object_foreach(ev, f, fv) {
					xn_buf_printf(out, "<member><name>%s</name>", f);
					bool snap = rec && strcmp(f, "snapshot") == 0;
					xn_xmlrpc_value(out, fv, snap ? xn_type_parse(rec) : NULL);
					xn_buf_puts(out, "</member>");
				}
				xn_buf_puts(out, "</struct></value>");
			}
			xn_buf_puts(out, "</data></array></value>");
		} else {
			xn_xmlrpc_value(out, e, NULL);
		}
		xn_buf_puts(out, "</member>");
	}
	xn_buf_puts(out, "</struct></value>");
}

void xn_xmlrpc_value(xn_buf *out, json_t *v, const xn_type *t)
{
	if (t && t->kind == XN_T_OPTION)
		t = t->elem;
	if (t && t->kind == XN_T_RECORD && strcmp(t->name, "event_batch") == 0 &&
	    json_is_object(v)) {
		put_event_batch(out, v);
		return;
	}
	xn_buf_puts(out, "<value>");
	if (json_is_object(v)) {
		xn_buf_puts(out, "<struct>");
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e) {
			const xn_type *et = !t ? NULL
					    : t->kind == XN_T_MAP ? t->val
					    : t->kind == XN_T_RECORD ? field_type(t, k)
								      : NULL;
			xn_buf_puts(out, "<member><name>");
			xn_buf_puts(out, k); /* member names are not escaped (xapi) */
			xn_buf_puts(out, "</name>");
			xn_xmlrpc_value(out, e, et);
			xn_buf_puts(out, "</member>");
		}
		xn_buf_puts(out, "</struct>");
	} else if (json_is_array(v)) {
		xn_buf_puts(out, "<array><data>");
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
			xn_xmlrpc_value(out, e, t && t->kind == XN_T_SET ? t->elem : NULL);
		xn_buf_puts(out, "</data></array>");
	} else if (json_is_boolean(v)) {
		xn_buf_puts(out, json_is_true(v) ? "<boolean>1</boolean>" : "<boolean>0</boolean>");
	} else if (json_is_integer(v)) {
		if (t && t->kind == XN_T_FLOAT)
			xn_buf_printf(out, "<double>%.16g</double>", (double)json_integer_value(v));
		else
			xn_buf_printf(out, "%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		xn_buf_printf(out, "<double>%.16g</double>", json_real_value(v));
	} else if (json_is_string(v)) {
		bool date = t && t->kind == XN_T_DATETIME;
		if (date)
			xn_buf_puts(out, "<dateTime.iso8601>");
		put_text(out, json_string_value(v));
		if (date)
			xn_buf_puts(out, "</dateTime.iso8601>");
	}
	xn_buf_puts(out, "</value>");
}

static const char head[] = "<?xml version=\"1.0\"?><methodResponse><params><param>";
static const char tail[] = "</param></params></methodResponse>";

static void respond(xn_http_req *req, xn_buf *b)
{
	xn_http_respond(req, 200, "text/xml", b->data, b->len);
	xn_buf_reset(b);
}

struct xrpc {
	xn_http_req *req;
	bool bare;  /* system.listMethods: no Status wrapper */
};

static void reply(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	struct xrpc *r = ud;
	xn_buf b = {0};
	xn_buf_puts(&b, head);
	if (err) {
		xn_buf_puts(&b, "<value><struct><member><name>Status</name><value>Failure</value>"
				"</member><member><name>ErrorDescription</name><value><array><data>");
		xn_buf_puts(&b, "<value>");
		put_text(&b, err->code);
		xn_buf_puts(&b, "</value>");
		for (size_t i = 0; err->params && err->params[i]; i++) {
			xn_buf_puts(&b, "<value>");
			put_text(&b, err->params[i]);
			xn_buf_puts(&b, "</value>");
		}
		xn_buf_puts(&b, "</data></array></value></member></struct></value>");
	} else if (r->bare) {
		xn_xmlrpc_value(&b, result, type);
	} else {
		xn_buf_puts(&b, "<value><struct><member><name>Status</name><value>Success</value>"
				"</member><member><name>Value</name>");
		xn_xmlrpc_value(&b, result, type);
		xn_buf_puts(&b, "</member></struct></value>");
	}
	xn_buf_puts(&b, tail);
	respond(r->req, &b);
	free(r);
}

void xn_xmlrpc_handle(void *ud, xn_http_req *req)
{
	xn_api *api = ud;
	size_t len;
	const char *body = xn_http_req_body(req, &len);
	char *method = NULL;
	json_t *params = xn_xmlrpc_decode(body, len, &method);
	if (!params) {
		static const char msg[] = "<html><body><h1>HTTP 500 Internal Server Error</h1>"
					  "Malformed method request</body></html>";
		xn_http_respond(req, 500, "text/html", msg, sizeof(msg) - 1);
		return;
	}
	struct xrpc *r = xn_calloc(1, sizeof(*r));
	r->req = req;
	r->bare = strcmp(method, "system.listMethods") == 0;
	xn_api_call(api, method, params, xn_http_req_is_local(req), reply, r);
	json_decref(params);
	free(method);
}
