/* format.c: how `xe` prints values and records (xenapi.md §4.2,
 * cli_printer.ml and records.ml in xapi): sets as "a; b", maps as
 * "k: v; k2: v2", references as the target's uuid, the aligned
 * multi-line record layout. Pure: records come in as JSON and other
 * objects through an xe_lookup. */
#include <ctype.h>
#include <string.h>

#include "cli/cli.h"
#include "util/uuid.h"

#define NOT_IN_DB "<not in database>"

/* Enums xe prints differently from the wire (records.ml,
 * record_util.ml): power states lowercase, VDI types capitalised. */
static void display_enum(xn_buf *b, const xn_enum *en, const char *s)
{
	size_t start = b->len;
	xn_buf_puts(b, s);
	if (!en || start == b->len)
		return;
	if (strcmp(en->name, "vm_power_state") == 0) {
		for (size_t i = start; i < b->len; i++)
			b->data[i] = (char)tolower((unsigned char)b->data[i]);
	} else if (strcmp(en->name, "vdi_type") == 0) {
		b->data[start] = (char)toupper((unsigned char)b->data[start]);
	}
}

static void render_ref(xn_buf *b, const char *cls, json_t *v, const xe_lookup *lk)
{
	const char *ref = json_string_value(v);
	json_t *rec = NULL;
	if (ref && !xn_ref_is_null(ref) && lk && lk->record)
		rec = lk->record(lk->ctx, cls, ref);
	const char *uuid = json_string_value(json_object_get(rec, "uuid"));
	xn_buf_puts(b, uuid ? uuid : NOT_IN_DB);
}

static void render_number(xn_buf *b, const xn_type *t, json_t *v)
{
	if (t->kind == XN_T_FLOAT || json_is_real(v))
		xn_buf_printf(b, "%.3f", json_number_value(v));
	else
		xn_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
}

static void render_into(xn_buf *b, const xn_type *t, json_t *v, const xe_lookup *lk);

static void render_set(xn_buf *b, const xn_type *t, json_t *v, const xe_lookup *lk)
{
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		if (i)
			xn_buf_puts(b, "; ");
		render_into(b, t->elem, e, lk);
	}
}

static void render_map(xn_buf *b, const xn_type *t, json_t *v, const xe_lookup *lk)
{
	const char *k;
	json_t *e;
	bool first = true;
	json_object_foreach(v, k, e) {
		if (!first)
			xn_buf_puts(b, "; ");
		first = false;
		json_t *key = json_string(k);
		render_into(b, t->key, key, lk);
		json_decref(key);
		xn_buf_puts(b, ": ");
		render_into(b, t->val, e, lk);
	}
}

static void render_into(xn_buf *b, const xn_type *t, json_t *v, const xe_lookup *lk)
{
	if (!v || json_is_null(v))
		return;
	if (t->kind == XN_T_OPTION)
		t = t->elem;
	if (t->kind == XN_T_REF && json_is_string(v)) {
		render_ref(b, t->name, v, lk);
	} else if (t->kind == XN_T_ENUM && json_is_string(v)) {
		display_enum(b, t->en, json_string_value(v));
	} else if (json_is_string(v)) {
		xn_buf_puts(b, json_string_value(v));
	} else if (json_is_number(v)) {
		render_number(b, t, v);
	} else if (json_is_boolean(v)) {
		xn_buf_puts(b, json_is_true(v) ? "true" : "false");
	} else if (json_is_array(v) && t->kind == XN_T_SET) {
		render_set(b, t, v, lk);
	} else if (json_is_object(v) && t->kind == XN_T_MAP) {
		render_map(b, t, v, lk);
	} else {
		XN_AUTOFREE char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		xn_buf_puts(b, s ? s : "");
	}
}

char *xe_render(const xn_type *t, json_t *v, const xe_lookup *lk)
{
	xn_buf b = {0};
	render_into(&b, t, v, lk);
	return xn_buf_steal(&b);
}

static bool key_selected(const char *key, char *const *keys)
{
	for (size_t i = 0; keys[i]; i++)
		if (strcasecmp(keys[i], key) == 0)
			return true;
	return false;
}

char *xe_format_record(xe_rec *r, char *const *keys, bool suffixes, const xe_lookup *lk)
{
	XN_AUTOSTRV char **labels = xn_strv_new();
	xe_row **rows = xn_calloc(r->nrows + 1, sizeof(*rows));
	size_t n = 0, width = 0;
	for (size_t i = 0; i < r->nrows; i++) {
		xe_row *row = &r->rows[i];
		if (keys ? !key_selected(row->key, keys) : row->hidden)
			continue;
		rows[n++] = row;
		xn_strv_pushf(&labels, "%s%s", row->key, suffixes ? xe_row_suffix(row) : "");
		size_t len = strlen(labels[n - 1]);
		if (len > width)
			width = len;
	}
	xn_buf b = {0};
	width += 4;
	for (size_t i = 0; i < n; i++)
		xn_buf_printf(&b, i ? "%*s: %s\n" : "%-*s: %s\n", (int)width, labels[i],
			      xe_row_value(r, rows[i], lk));
	if (n)
		xn_buf_puts(&b, "\n");
	free(rows);
	return xn_buf_steal(&b);
}
