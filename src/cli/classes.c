/* classes.c: the classes `xe` shows and what their records look like.
 *
 * Everything here is derived from the datamodel: a CLI record is the
 * class's fields in declaration order under their CLI names, plus a few
 * derived fields read through a reference (xapi merges VM_metrics into
 * the VM record, VBDs show their VM's name-label), minus a few hidden
 * ones. Filters (`power-state=halted`, `other-config:k=v`,
 * `tags:contains=x`, `vm=<name or uuid>`) and column selection work on
 * these records. Pure: other objects come through an xe_lookup. */
#include <string.h>

#include "cli/cli.h"
#include "util/uuid.h"

/* Per class: the fixed filters of its listings and the default columns
 * of `<cls>-list` (xenapi.md §4.3). */
static const xe_class_spec specs[] = {
	{"vm", "VM", "is-a-template=false is-a-snapshot=false", "uuid name-label power-state"},
	{"template", "VM", "is-a-template=true is-a-snapshot=false", "uuid name-label name-description"},
	{"snapshot", "VM", "is-a-snapshot=true", "uuid name-label name-description"},
	{"host", "host", NULL, "uuid name-label name-description"},
	{"pool", "pool", NULL, "uuid name-label name-description master default-SR"},
	{"sr", "SR", NULL, "uuid name-label name-description host type content-type"},
	{"vdi", "VDI", NULL, "uuid name-label name-description virtual-size read-only sharable sr-uuid"},
	{"vbd", "VBD", NULL, "uuid vm-uuid vm-name-label vdi-uuid device empty"},
	{"network", "network", NULL, "uuid name-label name-description bridge"},
	{"vif", "VIF", NULL, "uuid device vm-uuid network-uuid"},
	{"pif", "PIF", NULL, "uuid device VLAN MAC network-uuid currently-attached host-uuid"},
	{"vlan", "VLAN", NULL, "uuid tag tagged-PIF untagged-PIF"},
	{"bond", "Bond", NULL, "uuid master slaves mode"},
	{"pbd", "PBD", NULL, "uuid host-uuid sr-uuid device-config currently-attached"},
	{"console", "console", NULL, "uuid vm-uuid vm-name-label protocol location"},
	{"task", "task", NULL, "uuid name-label name-description status progress"},
	{"host-metrics", "host_metrics", NULL, "uuid memory-total memory-free live"},
	{"vm-metrics", "VM_metrics", NULL, "uuid memory-actual VCPUs-number start-time"},
};

const xe_class_spec *xe_class_specs(size_t *n)
{
	*n = XN_ARRAY_LEN(specs);
	return specs;
}

const xe_class_spec *xe_class_spec_find(const char *cli)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(specs); i++)
		if (strcmp(specs[i].cli, cli) == 0)
			return &specs[i];
	return NULL;
}

/* ---- derived and hidden fields --------------------------------------- */

struct xe_derived {
	const char *cls, *key;
	const char *after;         /* shown after this key (NULL: at the end) */
	const char *via, *field;   /* the `field` of the object `via` points at */
	char *(*fn)(const xe_rec *r, const xe_lookup *lk);
};

static char *sr_host(const xe_rec *r, const xe_lookup *lk);

static const xe_derived derived[] = {
	{"VM", "memory-actual", "power-state", "metrics", "memory_actual", NULL},
	{"VM", "VCPUs-number", "VCPUs-at-startup", "metrics", "VCPUs_number", NULL},
	{"VM", "start-time", "dom-id", "metrics", "start_time", NULL},
	{"VM", "install-time", "start-time", "metrics", "install_time", NULL},
	{"VM", "os-version", "install-time", "guest_metrics", "os_version", NULL},
	{"VM", "PV-drivers-version", "os-version", "guest_metrics", "PV_drivers_version", NULL},
	{"VM", "PV-drivers-up-to-date", "PV-drivers-version", "guest_metrics",
	 "PV_drivers_up_to_date", NULL},
	{"VM", "memory", "PV-drivers-up-to-date", "guest_metrics", "memory", NULL},
	{"VM", "networks", "memory", "guest_metrics", "networks", NULL},
	{"VM", "PV-drivers-detected", "networks", "guest_metrics", "PV_drivers_detected", NULL},
	{"VM", "other", "PV-drivers-detected", "guest_metrics", "other", NULL},
	{"VM", "live", "other", "guest_metrics", "live", NULL},
	{"VM", "guest-metrics-last-updated", "live", "guest_metrics", "last_updated", NULL},
	{"VM", "can-use-hotplug-vbd", "guest-metrics-last-updated", "guest_metrics",
	 "can_use_hotplug_vbd", NULL},
	{"VM", "can-use-hotplug-vif", "can-use-hotplug-vbd", "guest_metrics",
	 "can_use_hotplug_vif", NULL},
	{"host", "memory-total", NULL, "metrics", "memory_total", NULL},
	{"host", "memory-free", NULL, "metrics", "memory_free", NULL},
	{"VBD", "vm-name-label", "vm-uuid", "VM", "name_label", NULL},
	{"VBD", "vdi-name-label", "vdi-uuid", "VDI", "name_label", NULL},
	{"VIF", "vm-name-label", "vm-uuid", "VM", "name_label", NULL},
	{"console", "vm-name-label", "vm-uuid", "VM", "name_label", NULL},
	{"SR", "host", "name-description", NULL, NULL, sr_host},
};

/* Stored fields xe does not list (internal bookkeeping, or shown
 * through a derived field instead). */
static const struct {
	const char *cls, *field;
} hidden[] = {
	{"VM", "metrics"}, {"VM", "guest_metrics"}, {"VM", "snapshot_metadata"},
	{"VM", "last_booted_record"}, {"VM", "transportable_snapshot_id"}, {"VM", "NVRAM"},
	{"VM", "is_snapshot_from_vmpp"}, {"host", "metrics"},
};

static bool is_hidden(const xn_field *f)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(hidden); i++)
		if (strcmp(hidden[i].cls, f->cls->name) == 0 && strcmp(hidden[i].field, f->name) == 0)
			return true;
	return false;
}

static char *sr_host(const xe_rec *r, const xe_lookup *lk)
{
	if (json_is_true(json_object_get(r->json, "shared")))
		return xn_strdup("<shared>");
	const char *pbd_ref = json_string_value(json_array_get(json_object_get(r->json, "PBDs"), 0));
	json_t *pbd = pbd_ref ? lk->record(lk->ctx, "PBD", pbd_ref) : NULL;
	const char *host_ref = json_string_value(json_object_get(pbd, "host"));
	json_t *host = host_ref ? lk->record(lk->ctx, "host", host_ref) : NULL;
	const char *name = json_string_value(json_object_get(host, "name_label"));
	return xn_strdup(name ? name : "<not in database>");
}

/* The field a derived row shows (NULL for computed ones). */
static const xn_field *derived_target(const xe_derived *d, const xn_class *cls)
{
	if (d->fn)
		return NULL;
	const xn_field *via = xn_class_field(cls, d->via);
	const xn_class *tc = via ? xn_model_class(via->type->name) : NULL;
	return tc ? xn_class_field(tc, d->field) : NULL;
}

static char *derived_value(const xe_rec *r, const xe_derived *d, const xe_lookup *lk)
{
	if (d->fn)
		return d->fn(r, lk);
	const xn_field *tf = derived_target(d, r->cls);
	const char *ref = json_string_value(json_object_get(r->json, d->via));
	json_t *target = NULL;
	if (tf && ref && !xn_ref_is_null(ref) && lk && lk->record)
		target = lk->record(lk->ctx, tf->cls->name, ref);
	if (!target)
		return xn_strdup("<not in database>");
	return xe_render(tf->type, json_object_get(target, d->field), lk);
}

/* ---- records ----------------------------------------------------------- */

static void push_row(xe_rec *r, const char *key, const xn_field *f, const xe_derived *d)
{
	r->rows = xn_realloc(r->rows, (r->nrows + 1) * sizeof(xe_row));
	xe_row *row = &r->rows[r->nrows++];
	memset(row, 0, sizeof(*row));
	row->key = key;
	row->field = f;
	row->derived = d;
	row->hidden = f && is_hidden(f);
}

static void push_derived_after(xe_rec *r, const char *after, bool *placed)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(derived); i++) {
		const xe_derived *d = &derived[i];
		if (placed[i] || strcmp(d->cls, r->cls->name) != 0)
			continue;
		if (after && !xn_streq(d->after, after))
			continue;
		placed[i] = true;
		push_row(r, d->key, NULL, d);
		push_derived_after(r, d->key, placed);
	}
}

xe_rec *xe_rec_new(const xe_class_spec *spec, const char *ref, json_t *json)
{
	xe_rec *r = xn_calloc(1, sizeof(*r));
	r->spec = spec;
	r->cls = xn_model_class(spec->cls);
	r->ref = xn_strdup(ref);
	r->json = json_incref(json);
	bool placed[XN_ARRAY_LEN(derived)] = {0};
	for (size_t i = 0; r->cls && i < r->cls->nfields; i++) {
		const xn_field *f = &r->cls->fields[i];
		push_row(r, f->cli_name, f, NULL);
		push_derived_after(r, f->cli_name, placed);
	}
	push_derived_after(r, NULL, placed);
	return r;
}

void xe_rec_free(xe_rec *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrows; i++)
		free(r->rows[i].value);
	free(r->rows);
	free(r->ref);
	json_decref(r->json);
	free(r);
}

xe_row *xe_rec_row(xe_rec *r, const char *key)
{
	for (size_t i = 0; i < r->nrows; i++)
		if (xn_cli_name_eq(r->rows[i].key, key))
			return &r->rows[i];
	return NULL;
}

const char *xe_row_value(xe_rec *r, xe_row *row, const xe_lookup *lk)
{
	if (!row->value)
		row->value = row->derived ? derived_value(r, row->derived, lk)
					  : xe_render(row->field->type, json_object_get(r->json, row->field->name), lk);
	return row->value;
}

json_t *xe_row_raw(const xe_rec *r, const xe_row *row)
{
	return row->field ? json_object_get(r->json, row->field->name) : NULL;
}

const xn_field *xe_row_field(const xe_rec *r, const xe_row *row)
{
	return row->field ? row->field : derived_target(row->derived, r->cls);
}

json_t *xe_row_json(const xe_rec *r, const xe_row *row, const xe_lookup *lk)
{
	const xn_field *tf = xe_row_field(r, row);
	if (row->field || !tf)
		return xe_row_raw(r, row);
	const char *ref = json_string_value(json_object_get(r->json, row->derived->via));
	json_t *target = ref && !xn_ref_is_null(ref) && lk && lk->record
				 ? lk->record(lk->ctx, tf->cls->name, ref)
				 : NULL;
	return json_object_get(target, tf->name);
}

bool xe_field_settable(const xn_field *f)
{
	if (f->qualifier == XN_RW)
		return true;
	XN_AUTOFREE char *setter = xn_asprintf("set_%s", f->name);
	return xn_class_message(f->cls, setter) != NULL;
}

bool xe_field_keys_settable(const xn_field *f)
{
	if (f->type->kind != XN_T_MAP && f->type->kind != XN_T_SET)
		return false;
	if (f->qualifier == XN_RW)
		return true;
	XN_AUTOFREE char *adder = xn_asprintf(f->type->kind == XN_T_MAP ? "add_to_%s" : "add_%s", f->name);
	return xn_class_message(f->cls, adder) != NULL;
}

const char *xe_row_suffix(const xe_row *row)
{
	const xn_field *f = row->field;
	if (!f) {
		const xn_field *tf = row->derived->fn ? NULL : derived_target(row->derived, xn_model_class(row->derived->cls));
		xn_kind k = tf ? tf->type->kind : XN_T_STRING;
		return k == XN_T_MAP ? " (MRO)" : k == XN_T_SET ? " (SRO)" : " ( RO)";
	}
	bool rw = xe_field_settable(f) || xe_field_keys_settable(f);
	switch (f->type->kind) {
	case XN_T_MAP:
		return rw ? " (MRW)" : " (MRO)";
	case XN_T_SET:
		return rw ? " (SRW)" : " (SRO)";
	default:
		return rw ? " ( RW)" : " ( RO)";
	}
}

/* ---- filters and columns ------------------------------------------- */

/* The pseudo-field selecting by name-label or uuid: `vm=` for every VM
 * view, otherwise the CLI class name (`host=`, `sr=`). */
static bool is_pseudo_key(const xe_class_spec *spec, const char *key)
{
	return strcmp(key, spec->cli) == 0 || strcasecmp(key, spec->cls) == 0;
}

static bool known_key(const xe_class_spec *spec, const char *key)
{
	const xn_class *c = xn_model_class(spec->cls);
	if (!c || is_pseudo_key(spec, key) || xn_class_field_cli(c, key))
		return true;
	for (size_t i = 0; i < XN_ARRAY_LEN(derived); i++)
		if (strcmp(derived[i].cls, c->name) == 0 && strcasecmp(derived[i].key, key) == 0)
			return true;
	return false;
}

static void filter_set(xe_filter *f, const char *key, const char *value)
{
	const char *colon = strchr(key, ':');
	f->key = colon ? xn_strndup(key, (size_t)(colon - key)) : xn_strdup(key);
	f->mapkey = colon ? xn_strdup(colon + 1) : NULL;
	f->value = xn_strdup(value);
	f->contains = colon && strcmp(colon + 1, "contains") == 0;
}

xe_filter *xe_filters_from_params(const xe_class_spec *spec, const xe_param *p, size_t n,
				  const char *skip, xn_error **err)
{
	xe_filter *f = xn_calloc(n + 1, sizeof(*f));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		/* Declared parameters are not filters, but the pseudo-field
		 * (`vm=`) is both a declared parameter and a selector. */
		bool declared = xe_words_has(skip, p[i].key) && !is_pseudo_key(spec, p[i].key);
		if (xe_is_std_param(p[i].key) || declared)
			continue;
		filter_set(&f[k], p[i].key, p[i].value);
		if (!known_key(spec, f[k++].key)) {
			xe_fail(err, "Unknown field '%s' for %s objects", f[k - 1].key, spec->cli);
			xe_filters_free(f);
			return NULL;
		}
	}
	return f;
}

xe_filter *xe_filters_parse(const char *text)
{
	XN_AUTOFREE char *copy = xn_strdup(text ? text : "");
	xe_filter *f = xn_calloc(strlen(copy) / 2 + 1, sizeof(*f));
	size_t k = 0;
	for (char *save, *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq)
			continue;
		*eq = '\0';
		filter_set(&f[k++], tok, eq + 1);
	}
	return f;
}

void xe_filters_free(xe_filter *f)
{
	for (size_t i = 0; f && f[i].key; i++) {
		free(f[i].key);
		free(f[i].mapkey);
		free(f[i].value);
	}
	free(f);
}

static bool value_equal(const xn_type *t, const char *shown, const char *want)
{
	if (t && t->kind == XN_T_ENUM)
		return strcasecmp(shown, want) == 0;
	return strcmp(shown, want) == 0;
}

static bool match_element(const xe_rec *r, const xe_row *row, const xe_filter *f, const xe_lookup *lk)
{
	json_t *raw = xe_row_raw(r, row);
	if (!row->field)
		return false;
	const xn_type *t = row->field->type;
	if (t->kind == XN_T_OPTION)
		t = t->elem;
	if (f->contains && json_is_array(raw)) {
		size_t i;
		json_t *e;
		json_array_foreach(raw, i, e) {
			XN_AUTOFREE char *s = xe_render(t->elem, e, lk);
			if (value_equal(t->elem, s, f->value))
				return true;
		}
		return false;
	}
	json_t *e = json_is_object(raw) ? json_object_get(raw, f->mapkey) : NULL;
	if (!e)
		return false;
	XN_AUTOFREE char *s = xe_render(t->val, e, lk);
	return value_equal(t->val, s, f->value);
}

bool xe_rec_matches(xe_rec *r, const xe_filter *f, const xe_lookup *lk)
{
	if (is_pseudo_key(r->spec, f->key)) {
		const char *uuid = json_string_value(json_object_get(r->json, "uuid"));
		const char *name = json_string_value(json_object_get(r->json, "name_label"));
		return xn_streq(uuid, f->value) || xn_streq(name, f->value);
	}
	xe_row *row = xe_rec_row(r, f->key);
	if (!row)
		return false;
	if (f->mapkey)
		return match_element(r, row, f, lk);
	return value_equal(row->field ? row->field->type : NULL, xe_row_value(r, row, lk), f->value);
}

bool xe_rec_matches_all(xe_rec *r, const xe_filter *f, const xe_lookup *lk)
{
	for (size_t i = 0; f && f[i].key; i++)
		if (!xe_rec_matches(r, &f[i], lk))
			return false;
	return true;
}

char **xe_columns(const xe_class_spec *spec, const char *params)
{
	if (params && strcmp(params, "all") == 0)
		return NULL;
	const char *text = params ? params : spec->columns;
	char **cols = xn_strv_new();
	XN_AUTOFREE char *copy = xn_strdup(text);
	for (char *save, *tok = strtok_r(copy, params ? "," : " ", &save); tok;
	     tok = strtok_r(NULL, params ? "," : " ", &save))
		xn_strv_push(&cols, tok);
	return cols;
}
