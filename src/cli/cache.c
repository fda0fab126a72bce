/* cache.c: records the CLI has fetched, so that printing a list resolves
 * every reference with one `<Class>.get_all_records` per class instead
 * of one call per reference. A class whose get_all_records fails falls
 * back to `get_record` per reference. The cache lives for one command;
 * commands that change objects call xe_cache_reset before printing. */
#include <string.h>

#include "cli/cli.h"
#include "util/uuid.h"

struct xe_cache {
	xe_conn *conn;
	json_t *all;     /* class -> {ref -> record} */
	json_t *single;  /* "class/ref" -> record, or null if not in the database */
	json_t *failed;  /* class -> true: no get_all_records */
};

xe_cache *xe_cache_new(xe_conn *conn)
{
	xe_cache *c = xn_calloc(1, sizeof(*c));
	c->conn = conn;
	c->all = json_object();
	c->single = json_object();
	c->failed = json_object();
	return c;
}

void xe_cache_free(xe_cache *c)
{
	if (!c)
		return;
	json_decref(c->all);
	json_decref(c->single);
	json_decref(c->failed);
	free(c);
}

void xe_cache_reset(xe_cache *c)
{
	json_object_clear(c->all);
	json_object_clear(c->single);
	json_object_clear(c->failed);
}

json_t *xe_cache_all(xe_cache *c, const char *cls, xn_error **err)
{
	json_t *hit = json_object_get(c->all, cls);
	if (hit)
		return hit;
	XN_AUTOFREE char *method = xn_asprintf("%s.get_all_records", cls);
	json_t *recs = xe_call(c->conn, method, NULL, err);
	if (!json_is_object(recs)) {
		if (recs)
			xe_fail(err, "%s returned no records", method);
		json_decref(recs);
		json_object_set_new(c->failed, cls, json_true());
		return NULL;
	}
	json_object_set_new(c->all, cls, recs);
	return recs;
}

static json_t *get_single(xe_cache *c, const char *cls, const char *ref)
{
	XN_AUTOFREE char *key = xn_asprintf("%s/%s", cls, ref);
	json_t *hit = json_object_get(c->single, key);
	if (hit)
		return json_is_null(hit) ? NULL : hit;
	XN_AUTOFREE char *method = xn_asprintf("%s.get_record", cls);
	XN_AUTOERR xn_error *err = NULL;
	json_t *rec = xe_call(c->conn, method, json_pack("[s]", ref), &err);
	if (!json_is_object(rec)) {
		json_decref(rec);
		rec = json_null();
	}
	json_object_set_new(c->single, key, rec);
	return json_is_null(rec) ? NULL : rec;
}

static json_t *cache_record(void *ctx, const char *cls, const char *ref)
{
	xe_cache *c = ctx;
	if (xn_ref_is_null(ref))
		return NULL;
	if (!json_object_get(c->failed, cls)) {
		XN_AUTOERR xn_error *err = NULL;
		json_t *all = xe_cache_all(c, cls, &err);
		if (all)
			return json_object_get(all, ref);
	}
	return get_single(c, cls, ref);
}

xe_lookup xe_cache_lookup(xe_cache *c)
{
	return (xe_lookup){.record = cache_record, .ctx = c};
}

char *xe_cache_describe_ref(xe_cache *c, const char *ref)
{
	static const char *const classes[] = {"VM", "host", "SR", "VDI", "VBD", "VIF", "network",
					      "PIF", "PBD", "pool", "task", "console"};
	if (!xn_str_has_prefix(ref, "OpaqueRef:") || xn_ref_is_null(ref))
		return NULL;
	for (size_t i = 0; i < XN_ARRAY_LEN(classes); i++) {
		json_t *rec = cache_record(c, classes[i], ref);
		const char *uuid = json_string_value(json_object_get(rec, "uuid"));
		if (!uuid)
			continue;
		const char *name = json_string_value(json_object_get(rec, "name_label"));
		return name ? xn_asprintf("%s (%s)", uuid, name) : xn_strdup(uuid);
	}
	return NULL;
}
