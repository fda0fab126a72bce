/* cmd_param.c: the commands generated for every CLI class (xenapi.md
 * §4.3): `<cls>-list`, `-param-list`, `-param-get`, `-param-set`,
 * `-param-add`, `-param-remove`, `-param-clear`, plus the helpers other
 * command groups share: fetching and selecting records, resolving uuids
 * and converting command-line strings to the JSON a field takes.
 *
 * Records come from `<Class>.get_all_records` and are filtered on the
 * client; writes go through the generated setters of §2.1 (`set_<f>`,
 * `add_to_<f>`/`remove_from_<f>` for maps, `add_<f>`/`remove_<f>` for
 * sets), and only for fields the model says are writable. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* ---- shared helpers --------------------------------------------------- */

void xe_recs_free(xe_rec **recs)
{
	for (size_t i = 0; recs && recs[i]; i++)
		xe_rec_free(recs[i]);
	free(recs);
}

static xe_rec **fetch_where(xe_ctx *ctx, const xe_class_spec *spec, const xe_filter *fixed,
			    const xe_filter *f, xn_error **err)
{
	json_t *all = xe_cache_all(ctx->cache, spec->cls, err);
	if (!all)
		return NULL;
	xe_rec **recs = xn_calloc(json_object_size(all) + 1, sizeof(*recs));
	size_t n = 0;
	const char *ref;
	json_t *json;
	json_object_foreach(all, ref, json) {
		xe_rec *r = xe_rec_new(spec, ref, json);
		if (xe_rec_matches_all(r, fixed, &ctx->lk) && xe_rec_matches_all(r, f, &ctx->lk))
			recs[n++] = r;
		else
			xe_rec_free(r);
	}
	return recs;
}

xe_rec **xe_fetch(xe_ctx *ctx, const xe_class_spec *spec, const xe_filter *f, xn_error **err)
{
	xe_filter *fixed = xe_filters_parse(spec->fixed);
	xe_rec **recs = fetch_where(ctx, spec, fixed, f, err);
	xe_filters_free(fixed);
	return recs;
}

xe_rec **xe_select(xe_ctx *ctx, const xe_class_spec *spec, const char *extra, xn_error **err)
{
	const xe_cmd *cmd = ctx->cmd;
	XN_AUTOFREE char *skip = xn_asprintf("%s %s", cmd->reqd, cmd->optn);
	xe_filter *f = xe_filters_from_params(spec, ctx->args->params, ctx->args->nparams, skip, err);
	if (!f)
		return NULL;
	XN_AUTOFREE char *fixed_text = xn_asprintf("%s %s", spec->fixed ? spec->fixed : "",
						   extra ? extra : "");
	xe_filter *fixed = xe_filters_parse(fixed_text);
	xe_rec **recs = fetch_where(ctx, spec, fixed, f, err);
	xe_filters_free(fixed);
	bool selected = f[0].key != NULL;
	xe_filters_free(f);
	if (recs && !selected && !xe_arg_flag(ctx->args, "multiple")) {
		/* No selector means every object: only with --multiple. */
		xe_recs_free(recs);
		xe_fail(err, "No %s selector given: use %s=<name or uuid>, uuid=, any field=value, or "
			"--multiple for all of them", spec->cls, spec->cli);
		return NULL;
	}
	size_t n = 0;
	while (recs && recs[n])
		n++;
	if (recs && n == 0) {
		xe_recs_free(recs);
		xe_fail(err, "No matching %ss found", spec->cls);
		return NULL;
	}
	if (recs && n > 1 && !xe_arg_flag(ctx->args, "multiple")) {
		xe_recs_free(recs);
		xe_fail(err, "Multiple matches found (%zu %ss): --multiple required to complete the operation",
			n, spec->cls);
		return NULL;
	}
	return recs;
}

char *xe_ref_by_uuid(xe_ctx *ctx, const char *cls, const char *uuid, xn_error **err)
{
	XN_AUTOFREE char *method = xn_asprintf("%s.get_by_uuid", cls);
	json_t *ref = xe_call(ctx->conn, method, json_pack("[s]", uuid), err);
	char *s = json_is_string(ref) ? xn_strdup(json_string_value(ref)) : NULL;
	if (ref && !s)
		xe_fail(err, "%s returned no reference", method);
	json_decref(ref);
	return s;
}

xe_rec *xe_get_by_uuid(xe_ctx *ctx, const xe_class_spec *spec, const char *uuid, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, spec->cls, uuid, err);
	if (!ref)
		return NULL;
	XN_AUTOFREE char *method = xn_asprintf("%s.get_record", spec->cls);
	json_t *json = xe_call(ctx->conn, method, json_pack("[s]", ref), err);
	if (!json)
		return NULL;
	xe_rec *r = xe_rec_new(spec, ref, json);
	json_decref(json);
	return r;
}

static json_t *int_from_cli(const xn_field *f, const char *s, xn_error **err)
{
	XN_AUTOFREE char *lower = xn_strdup(f ? f->name : "");
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	int64_t v;
	if (strstr(lower, "memory") || strstr(lower, "size")) {
		if (xe_parse_size(s, &v, err) < 0)
			return NULL;
		return json_integer(v);
	}
	char *end;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (!*s || *end || errno) {
		xe_fail(err, "Error: '%s' is not an integer", s);
		return NULL;
	}
	return json_integer(n);
}

static json_t *enum_from_cli(const xn_enum *en, const char *s, xn_error **err)
{
	for (size_t i = 0; i < en->nvalues; i++)
		if (strcasecmp(en->values[i], s) == 0)
			return json_string(en->values[i]);
	XN_AUTOFREE char *valid = xn_strv_join(en->values, ", ");
	xe_fail(err, "Error: '%s' is not one of: %s", s, valid);
	return NULL;
}

/* "a,b,c" into a set, "k1:v1,k2:v2" into a map. */
static json_t *collection_from_cli(xe_ctx *ctx, const xn_field *f, const xn_type *t, const char *s,
				   xn_error **err)
{
	json_t *out = t->kind == XN_T_SET ? json_array() : json_object();
	XN_AUTOFREE char *copy = xn_strdup(s);
	for (char *save, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = t->kind == XN_T_MAP ? strchr(tok, ':') : NULL;
		if (t->kind == XN_T_MAP && !colon) {
			json_decref(out);
			xe_fail(err, "Error: '%s' is not a key:value pair", tok);
			return NULL;
		}
		if (colon)
			*colon = '\0';
		json_t *v = xe_value_from_cli(ctx, f, t->kind == XN_T_SET ? t->elem : t->val,
					      colon ? colon + 1 : tok, err);
		if (!v) {
			json_decref(out);
			return NULL;
		}
		if (colon)
			json_object_set_new(out, tok, v);
		else
			json_array_append_new(out, v);
	}
	return out;
}

json_t *xe_value_from_cli(xe_ctx *ctx, const xn_field *f, const xn_type *t, const char *s,
			  xn_error **err)
{
	bool b;
	switch (t->kind) {
	case XN_T_INT:
		return int_from_cli(f, s, err);
	case XN_T_FLOAT: {
		char *end;
		double d = strtod(s, &end);
		if (!*s || *end) {
			xe_fail(err, "Error: '%s' is not a number", s);
			return NULL;
		}
		return json_real(d);
	}
	case XN_T_BOOL:
		return xe_parse_bool(s, &b, err) < 0 ? NULL : json_boolean(b);
	case XN_T_ENUM:
		return enum_from_cli(t->en, s, err);
	case XN_T_REF: {
		if (!*s || xn_str_has_prefix(s, "OpaqueRef:"))
			return json_string(*s ? s : "OpaqueRef:NULL");
		char *ref = xe_ref_by_uuid(ctx, t->name, s, err);
		json_t *v = ref ? json_string(ref) : NULL;
		free(ref);
		return v;
	}
	case XN_T_SET:
	case XN_T_MAP:
		return collection_from_cli(ctx, f, t, s, err);
	case XN_T_OPTION:
		return xe_value_from_cli(ctx, f, t->elem, s, err);
	default:
		return json_string(s);
	}
}

/* Call `<Class>.<prefix><field>(ref, args...)`; args stolen. */
static int call_field(xe_ctx *ctx, const xn_field *f, const char *prefix, const char *ref,
		      json_t *args, xn_error **err)
{
	XN_AUTOFREE char *method = xn_asprintf("%s.%s%s", f->cls->name, prefix, f->name);
	json_t *params = json_pack("[s]", ref);
	json_array_extend(params, args);
	json_decref(args);
	json_t *r = xe_call(ctx->conn, method, params, err);
	json_decref(r);
	return r ? 0 : -1;
}

/* ---- list, param-list, param-get ---------------------------------------- */

static const char *first_column(xe_rec *r, char *const *cols, const xe_lookup *lk)
{
	for (size_t i = 0; i < r->nrows; i++) {
		xe_row *row = &r->rows[i];
		bool want = !cols ? !row->hidden : false;
		for (size_t j = 0; cols && cols[j] && !want; j++)
			want = strcasecmp(cols[j], row->key) == 0;
		if (want)
			return xe_row_value(r, row, lk);
	}
	return "";
}

int xe_cmd_list(xe_ctx *ctx, xn_error **err)
{
	const xe_class_spec *spec = ctx->cmd->data;
	const xe_args *a = ctx->args;
	xe_filter *f = xe_filters_from_params(spec, a->params, a->nparams, "params", err);
	if (!f)
		return -1;
	xe_rec **recs = xe_fetch(ctx, spec, f, err);
	xe_filters_free(f);
	if (!recs)
		return -1;
	XN_AUTOSTRV char **cols = xe_columns(spec, xe_arg(a, "params"));
	if (xe_arg_flag(a, "minimal")) {
		XN_AUTOSTRV char **vals = xn_strv_new();
		for (size_t i = 0; recs[i]; i++)
			xn_strv_push(&vals, first_column(recs[i], cols, &ctx->lk));
		XN_AUTOFREE char *line = xe_minimal_join(vals);
		fprintf(ctx->out, "%s\n", line);
	} else {
		for (size_t i = 0; recs[i]; i++) {
			XN_AUTOFREE char *text = xe_format_record(recs[i], cols, true, &ctx->lk);
			fputs(text, ctx->out);
		}
	}
	xe_recs_free(recs);
	return 0;
}

int xe_cmd_param_list(xe_ctx *ctx, xn_error **err)
{
	xe_rec *r = xe_get_by_uuid(ctx, ctx->cmd->data, xe_arg(ctx->args, "uuid"), err);
	if (!r)
		return -1;
	XN_AUTOFREE char *text = xe_format_record(r, NULL, true, &ctx->lk);
	fputs(text, ctx->out);
	xe_rec_free(r);
	return 0;
}

static int param_get(xe_ctx *ctx, xe_rec *r, xn_error **err)
{
	const char *name = xe_arg(ctx->args, "param-name");
	const char *key = xe_arg(ctx->args, "param-key");
	xe_row *row = xe_rec_row(r, name);
	if (!row)
		return xe_fail(err, "Error: unknown param %s", name);
	if (!key) {
		fprintf(ctx->out, "%s\n", xe_row_value(r, row, &ctx->lk));
		return 0;
	}
	const xn_field *f = xe_row_field(r, row);
	if (!f || f->type->kind != XN_T_MAP)
		return xe_fail(err, "Error: param %s is not a map", name);
	json_t *v = json_object_get(xe_row_json(r, row, &ctx->lk), key);
	if (!v)
		return xe_fail(err, "Error: key %s not found in map %s", key, name);
	XN_AUTOFREE char *s = xe_render(f->type->val, v, &ctx->lk);
	fprintf(ctx->out, "%s\n", s);
	return 0;
}

int xe_cmd_param_get(xe_ctx *ctx, xn_error **err)
{
	xe_rec *r = xe_get_by_uuid(ctx, ctx->cmd->data, xe_arg(ctx->args, "uuid"), err);
	if (!r)
		return -1;
	int rc = param_get(ctx, r, err);
	xe_rec_free(r);
	return rc;
}

/* ---- param-set ------------------------------------------------------------ */

/* One pending write of param-set, checked before anything is sent. */
struct write {
	const xn_field *f;
	char *key;      /* map key (map:key=value), or NULL */
	json_t *value;
};

static int plan_write(xe_ctx *ctx, const xn_class *cls, const xe_param *p, struct write *w,
		      xn_error **err)
{
	const char *colon = strchr(p->key, ':');
	XN_AUTOFREE char *name = colon ? xn_strndup(p->key, (size_t)(colon - p->key)) : xn_strdup(p->key);
	w->f = xn_class_field_cli(cls, name);
	if (!w->f)
		return xe_fail(err, "Error: unknown param %s", name);
	if (colon) {
		if (w->f->type->kind != XN_T_MAP)
			return xe_fail(err, "Error: param %s is not a map", name);
		if (!xe_field_keys_settable(w->f))
			return xe_fail(err, "Error: param %s is read-only", name);
		w->key = xn_strdup(colon + 1);
		w->value = xe_value_from_cli(ctx, w->f, w->f->type->val, p->value, err);
	} else {
		if (!xe_field_settable(w->f))
			return xe_fail(err, "Error: param %s is read-only", name);
		w->value = xe_value_from_cli(ctx, w->f, w->f->type, p->value, err);
	}
	return w->value ? 0 : -1;
}

static int apply_write(xe_ctx *ctx, const char *ref, struct write *w, xn_error **err)
{
	if (!w->key)
		return call_field(ctx, w->f, "set_", ref, json_pack("[O]", w->value), err);
	/* A map key: added; a key already there is dropped and added again
	 * (xapi's xe does both always; adding first means a value the
	 * server refuses leaves the old one in place). */
	XN_AUTOERR xn_error *first = NULL;
	if (call_field(ctx, w->f, "add_to_", ref, json_pack("[sO]", w->key, w->value), &first) == 0)
		return 0;
	if (strcmp(first->code, "MAP_DUPLICATE_KEY") != 0)
		return xn_error_propagate(err, &first);
	XN_AUTOERR xn_error *ignored = NULL;
	call_field(ctx, w->f, "remove_from_", ref, json_pack("[s]", w->key), &ignored);
	return call_field(ctx, w->f, "add_to_", ref, json_pack("[sO]", w->key, w->value), err);
}

int xe_cmd_param_set(xe_ctx *ctx, xn_error **err)
{
	const xe_class_spec *spec = ctx->cmd->data;
	const xe_args *a = ctx->args;
	const xn_class *cls = xn_model_class(spec->cls);
	struct write *w = xn_calloc(a->nparams + 1, sizeof(*w));
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < a->nparams && rc == 0; i++) {
		if (strcmp(a->params[i].key, "uuid") == 0 || xe_is_std_param(a->params[i].key))
			continue;
		rc = plan_write(ctx, cls, &a->params[i], &w[n++], err);
	}
	XN_AUTOFREE char *ref = rc == 0 ? xe_ref_by_uuid(ctx, spec->cls, xe_arg(a, "uuid"), err) : NULL;
	if (!ref)
		rc = -1;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = apply_write(ctx, ref, &w[i], err);
	for (size_t i = 0; i < n; i++) {
		free(w[i].key);
		json_decref(w[i].value);
	}
	free(w);
	return rc;
}

/* ---- param-add, param-remove, param-clear ------------------------------ */

/* The collection field named by param-name, and the object's ref. */
static const xn_field *collection_field(xe_ctx *ctx, char **ref, xn_error **err)
{
	const xe_class_spec *spec = ctx->cmd->data;
	const char *name = xe_arg(ctx->args, "param-name");
	const xn_field *f = xn_class_field_cli(xn_model_class(spec->cls), name);
	if (!f) {
		xe_fail(err, "Error: unknown param %s", name);
		return NULL;
	}
	if (f->type->kind != XN_T_MAP && f->type->kind != XN_T_SET) {
		xe_fail(err, "Error: param %s is not a set or a map", name);
		return NULL;
	}
	if (!xe_field_keys_settable(f) && !xe_field_settable(f)) {
		xe_fail(err, "Error: param %s is read-only", name);
		return NULL;
	}
	*ref = xe_ref_by_uuid(ctx, spec->cls, xe_arg(ctx->args, "uuid"), err);
	return *ref ? f : NULL;
}

static bool is_add_control(const char *key)
{
	return strcmp(key, "uuid") == 0 || strcmp(key, "param-name") == 0 ||
	       strcmp(key, "param-key") == 0 || xe_is_std_param(key);
}

int xe_cmd_param_add(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *ref = NULL;
	const xn_field *f = collection_field(ctx, &ref, err);
	if (!f)
		return -1;
	const xe_args *a = ctx->args;
	if (f->type->kind == XN_T_SET) {
		const char *v = xe_arg(a, "param-key");
		if (!v)
			return xe_fail(err, "Required parameter not found: param-key");
		json_t *jv = xe_value_from_cli(ctx, f, f->type->elem, v, err);
		return jv ? call_field(ctx, f, "add_", ref, json_pack("[o]", jv), err) : -1;
	}
	size_t added = 0;
	for (size_t i = 0; i < a->nparams; i++) {
		if (is_add_control(a->params[i].key))
			continue;
		json_t *jv = xe_value_from_cli(ctx, f, f->type->val, a->params[i].value, err);
		if (!jv || call_field(ctx, f, "add_to_", ref, json_pack("[so]", a->params[i].key, jv), err) < 0)
			return -1;
		added++;
	}
	return added ? 0 : xe_fail(err, "Error: give the entries to add as key=value");
}

int xe_cmd_param_remove(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *ref = NULL;
	const xn_field *f = collection_field(ctx, &ref, err);
	if (!f)
		return -1;
	const char *key = xe_arg(ctx->args, "param-key");
	if (f->type->kind == XN_T_MAP)
		return call_field(ctx, f, "remove_from_", ref, json_pack("[s]", key), err);
	json_t *jv = xe_value_from_cli(ctx, f, f->type->elem, key, err);
	return jv ? call_field(ctx, f, "remove_", ref, json_pack("[o]", jv), err) : -1;
}

int xe_cmd_param_clear(xe_ctx *ctx, xn_error **err)
{
	const xe_class_spec *spec = ctx->cmd->data;
	const char *name = xe_arg(ctx->args, "param-name");
	const xn_field *f = xn_class_field_cli(xn_model_class(spec->cls), name);
	if (!f)
		return xe_fail(err, "Error: unknown param %s", name);
	if (!xe_field_settable(f))
		return xe_fail(err, "Error: param %s is read-only", name);
	json_t *empty = f->type->kind == XN_T_MAP ? json_object()
			: f->type->kind == XN_T_SET ? json_array()
			: f->type->kind == XN_T_STRING ? json_string("") : NULL;
	if (!empty)
		return xe_fail(err, "Error: param %s cannot be cleared", name);
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, spec->cls, xe_arg(ctx->args, "uuid"), err);
	if (!ref) {
		json_decref(empty);
		return -1;
	}
	return call_field(ctx, f, "set_", ref, json_pack("[o]", empty), err);
}
