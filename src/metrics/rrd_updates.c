/* rrd_updates.c: GET /rrd_updates, the endpoint XenCenter and Xen
 * Orchestra draw their graphs from (metrics_int.h).
 *
 *   GET /rrd_updates?start=<t>[&interval=<s>][&cf=AVERAGE|MIN|MAX]
 *       [&host=true][&vm_uuid=<uuid>|all|none][&json=true][&session_id=<ref>]
 *
 * answers with rrdtool's "xport" document exactly as xapi writes it:
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <xport><meta><start>..</start><step>..</step><end>..</end>
 *   <rows>N</rows><columns>M</columns><legend>
 *   <entry>AVERAGE:host:<uuid>:cpu0</entry>...</legend></meta>
 *   <data><row><t>..</t><v>..</v>...</row>...</data></xport>
 *
 * (rows newest first), or with json=true its JSON form. As in xapi,
 * vm_uuid defaults to every running VM, host to none, a negative start
 * counts back from the last update, and interval picks the archive.
 * The document is written with libxml2's writer. The caller needs a
 * session (session_id, or basic authentication; root on the local
 * socket) with at least the read-only role. */
#include "metrics/metrics_int.h"

#include <errno.h>
#include <libxml/xmlwriter.h>
#include <stdlib.h>
#include <string.h>

static void element(xmlTextWriterPtr w, const char *name, const char *text)
{
	xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST text);
}

static void element_long(xmlTextWriterPtr w, const char *name, long v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%ld", v);
	element(w, name, buf);
}

char *xn_rrd_updates_xml(const xn_rrd_table *t, size_t *len)
{
	xmlBufferPtr buf = xmlBufferCreate();
	xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
	xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL);
	xmlTextWriterStartElement(w, BAD_CAST "xport");
	xmlTextWriterStartElement(w, BAD_CAST "meta");
	element_long(w, "start", t->start);
	element_long(w, "step", t->step);
	element_long(w, "end", t->end);
	element_long(w, "rows", (long)t->nrows);
	element_long(w, "columns", (long)t->ncols);
	xmlTextWriterStartElement(w, BAD_CAST "legend");
	for (size_t c = 0; c < t->ncols; c++)
		element(w, "entry", t->legend[c]);
	xmlTextWriterEndElement(w);
	xmlTextWriterEndElement(w);
	xmlTextWriterStartElement(w, BAD_CAST "data");
	for (size_t r = 0; r < t->nrows; r++) {
		xmlTextWriterStartElement(w, BAD_CAST "row");
		element_long(w, "t", t->times[r]);
		char v[32];
		for (size_t c = 0; c < t->ncols; c++)
			element(w, "v", xn_ds_format(t->data[r * t->ncols + c], v, sizeof(v)));
		xmlTextWriterEndElement(w);
	}
	xmlTextWriterEndDocument(w);
	xmlFreeTextWriter(w);
	*len = (size_t)xmlBufferLength(buf);
	char *out = xn_strndup((const char *)xmlBufferContent(buf), *len);
	xmlBufferFree(buf);
	return out;
}

char *xn_rrd_updates_json(const xn_rrd_table *t, size_t *len)
{
	json_t *legend = json_array(), *data = json_array();
	for (size_t c = 0; c < t->ncols; c++)
		json_array_append_new(legend, json_string(t->legend[c]));
	for (size_t r = 0; r < t->nrows; r++) {
		json_t *values = json_array();
		char v[32];
		for (size_t c = 0; c < t->ncols; c++)
			json_array_append_new(values, json_string(xn_ds_format(t->data[r * t->ncols + c],
									      v, sizeof(v))));
		json_array_append_new(data, json_pack("{s:I,s:o}", "t", (json_int_t)t->times[r],
						      "values", values));
	}
	json_t *doc = json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:o},s:o}", "meta", "start",
				(json_int_t)t->start, "step", (json_int_t)t->step, "end",
				(json_int_t)t->end, "rows", (json_int_t)t->nrows, "columns",
				(json_int_t)t->ncols, "legend", legend, "data", data);
	char *out = json_dumps(doc, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(doc);
	*len = strlen(out);
	return out;
}

static void refuse(xn_http_req *req, int status, const char *fmt, ...) XN_PRINTF(3, 4);
static void refuse(xn_http_req *req, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *msg = xn_vasprintf(fmt, ap);
	va_end(ap);
	xn_http_respond(req, status, "text/plain", msg, strlen(msg));
}

/* A query parameter as a long; def if absent, -1 (with *ok false) if malformed. */
static long query_long(xn_http_req *req, const char *name, long def, bool *ok)
{
	const char *s = xn_http_req_query(req, name);
	if (!s)
		return def;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno)
		*ok = false;
	return v;
}

struct request {
	xn_http_req *req;
	bool json;
};

static void fetched(void *ud, xn_rrd_table *t, xn_error *err)
{
	struct request *r = ud;
	if (err) {
		refuse(r->req, 500, "%s\n", err->message);
	} else {
		size_t len;
		XN_AUTOFREE char *body = r->json ? xn_rrd_updates_json(t, &len)
						 : xn_rrd_updates_xml(t, &len);
		xn_http_respond_headers(r->req, 200, r->json ? "application/json" : "text/xml",
					"Access-Control-Allow-Origin: *\r\n"
					"Access-Control-Allow-Headers: X-Requested-With\r\n",
					body, len);
	}
	xn_rrd_table_free(t);
	xn_error_free(err);
	free(r);
}

/* The owners asked for: the host (host=true) and VMs (vm_uuid). */
static xn_rrd_want *wanted(xn_host *h, xn_http_req *req, size_t *n)
{
	xn_rrd_want *w = xn_calloc(2, sizeof(*w));
	*n = 0;
	if (xn_streq(xn_http_req_query(req, "host"), "true")) {
		const char *uuid = xn_db_str(h->db, h->host_ref, "uuid");
		w[(*n)++] = (xn_rrd_want){xn_strdup(uuid), xn_asprintf("host:%s:", uuid)};
	}
	const char *vm = xn_http_req_query(req, "vm_uuid");
	if (xn_streq(vm, "none"))
		return w;
	for (xn_mowner *o = xn_metrics_owners(); o; o = o->next) {
		if (o->is_host || (vm && strcmp(vm, "all") != 0))
			continue;
		w = xn_realloc(w, (*n + 2) * sizeof(*w));
		w[(*n)++] = (xn_rrd_want){xn_strdup(o->uuid), xn_asprintf("vm:%s:", o->uuid)};
	}
	if (vm && strcmp(vm, "all") != 0 && xn_rrd_archived(xn_metrics_store(), vm))
		w[(*n)++] = (xn_rrd_want){xn_strdup(vm), xn_asprintf("vm:%s:", vm)};
	return w;
}

static void handle(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	XN_AUTOERR xn_error *err = NULL;
	int role = xn_api_http_role(h, req, &err);
	if (role < XN_ROLE_READ_ONLY) {
		refuse(req, 403, "%s\n", err ? err->code : "RBAC_PERMISSION_DENIED");
		return;
	}
	bool ok = true;
	long start = query_long(req, "start", 0, &ok);
	long interval = query_long(req, "interval", 0, &ok);
	const char *cf = xn_http_req_query(req, "cf");
	if (!xn_http_req_query(req, "start") || !ok || interval < 0) {
		refuse(req, 400, "start= (seconds since the epoch, or negative: before the last "
				 "update) and interval= (seconds) must be integers\n");
		return;
	}
	if (cf && strcmp(cf, "AVERAGE") != 0 && strcmp(cf, "MIN") != 0 && strcmp(cf, "MAX") != 0)
		cf = NULL; /* xapi ignores a cf it does not know */
	size_t n;
	xn_rrd_want *w = wanted(h, req, &n);
	struct request *r = xn_calloc(1, sizeof(*r));
	r->req = req;
	r->json = xn_http_req_query(req, "json") != NULL;
	xn_rrd_fetch(xn_metrics_store(), w, n, start, interval, cf, fetched, r);
	for (size_t i = 0; i < n; i++) {
		free(w[i].uuid);
		free(w[i].prefix);
	}
	free(w);
}

void xn_rrd_updates_init(xn_host *h)
{
	xn_api_route(h->api, "GET", "/rrd_updates", handle, h);
}
