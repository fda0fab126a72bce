/* accessors.c: the messages the datamodel implies for every class:
 * get_record, get_all, get_all_records, get_by_uuid, get_by_name_label,
 * get_<field>, set_<field>, add_to_/remove_from_<map>, add_/remove_<set>,
 * and create/destroy where the datamodel declares them implicit. None is
 * written per class (api.h). */
#include "api/api.h"

#include <string.h>

#include "api/where.h"
#include "util/uuid.h"
#include "vm/vm.h"

/* Explicit setters whose behaviour is exactly the generic one; any other
 * explicit setter needs its own handler (it validates more). */
static const char *generic_explicit[] = {
	"VM.set_other_config", "VM.add_to_other_config", "VM.remove_from_other_config",
	"VM.set_platform", "VM.add_to_platform", "VM.remove_from_platform",
	"VM.set_HVM_boot_policy", "VM.set_actions_after_crash",
	"VM.set_blocked_operations", "VM.add_to_blocked_operations",
	"VM.remove_from_blocked_operations", "VM.set_domain_type",
	"VDI.set_name_label", "VDI.set_name_description", "SR.set_name_label",
	"SR.set_name_description", "task.set_other_config", "task.add_to_other_config",
	"task.remove_from_other_config", "host.set_hostname_live",
	NULL,
};

static bool generic_ok(const char *method)
{
	for (size_t i = 0; generic_explicit[i]; i++)
		if (strcmp(generic_explicit[i], method) == 0)
			return true;
	return false;
}

static bool want_args(xn_call *c, size_t n)
{
	if (json_array_size(c->args) == n)
		return true;
	XN_AUTOFREE char *want = xn_asprintf("%zu", n);
	XN_AUTOFREE char *got = xn_asprintf("%zu", json_array_size(c->args));
	xn_call_fail_code(c, "MESSAGE_PARAMETER_COUNT_MISMATCH", c->method, want, got, NULL);
	return false;
}

/* The object named by argument 0, which must be of class cls. */
static json_t *self_record(xn_call *c, const xn_class *cls)
{
	const char *ref = json_string_value(xn_call_arg(c, 0));
	json_t *rec = ref && xn_db_class_of(c->host->db, ref) == cls ? xn_db_get(c->host->db, ref)
								     : NULL;
	if (!rec)
		xn_call_fail_code(c, "HANDLE_INVALID", cls->name, ref ? ref : "", NULL);
	return rec;
}

/* Control characters make labels unprintable and break line-based
 * tools; xe output is line-based. */
static bool text_ok(const xn_field *f, const char *s)
{
	bool multiline = strcmp(f->name, "name_description") == 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && !(multiline && (*p == '\n' || *p == '\t'))) || *p == 0x7f)
			return false;
	return true;
}

static bool role_allows(xn_call *c, int needed)
{
	if (c->role >= needed)
		return true;
	xn_call_fail_code(c, "RBAC_PERMISSION_DENIED", c->method,
			  "the role of this session does not allow the call", NULL);
	return false;
}

static const xn_type *typeof_f(const char *fmt, const char *cls)
{
	XN_AUTOFREE char *s = xn_asprintf(fmt, cls, cls);
	return xn_type_parse(s);
}

static void do_get_field(xn_call *c, const xn_class *cls, const xn_field *f)
{
	c->result_type = f->type;
	if (!want_args(c, 1))
		return;
	json_t *rec = self_record(c, cls);
	if (rec)
		xn_call_return(c, json_incref(json_object_get(rec, f->name)));
}

/* Validate v for field f (type, and text rules for labels). */
static json_t *field_value(xn_call *c, const xn_field *f, json_t *v)
{
	xn_error *err = NULL;
	json_t *ok = xn_value_check(f->type, v, f->name, &err);
	if (!ok) {
		xn_call_fail(c, err);
		return NULL;
	}
	if (json_is_string(ok) && f->type->kind == XN_T_STRING &&
	    !text_ok(f, json_string_value(ok))) {
		xn_call_fail_code(c, "INVALID_VALUE", f->name, json_string_value(ok), NULL);
		json_decref(ok);
		return NULL;
	}
	return ok;
}

static void commit_and_return(xn_call *c, xn_changes *cs)
{
	/* A VM's allowed_operations follow fields a client may write
	 * (is_a_template, blocked_operations): recompute them. */
	const char *ref = xn_call_arg_str(c, 0);
	const xn_class *cls = xn_db_class_of(c->host->db, ref);
	json_t *rec = cls && strcmp(cls->name, "VM") == 0 ? xn_changes_edit(cs, ref) : NULL;
	if (rec)
		json_object_set_new(rec, "allowed_operations", xn_vm_allowed_ops(rec));
	xn_error *err = NULL;
	if (xn_db_commit(c->host->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

static void do_set_field(xn_call *c, const xn_class *cls, const xn_field *f)
{
	if (!want_args(c, 2) || !self_record(c, cls))
		return;
	json_t *v = field_value(c, f, xn_call_arg(c, 1));
	if (!v)
		return;
	xn_changes *cs = xn_changes_new(c->host->db);
	xn_changes_set(cs, xn_call_arg_str(c, 0), f->name, v);
	commit_and_return(c, cs);
}

static void do_map_add(xn_call *c, const xn_class *cls, const xn_field *f, bool add)
{
	if (!want_args(c, add ? 3 : 2))
		return;
	json_t *rec = self_record(c, cls);
	if (!rec)
		return;
	const char *key = json_string_value(xn_call_arg(c, 1));
	if (!key) {
		xn_call_fail_code(c, "FIELD_TYPE_ERROR", "key", NULL);
		return;
	}
	json_t *map = json_object_get(rec, f->name);
	if (add && json_object_get(map, key)) {
		xn_call_fail_code(c, "MAP_DUPLICATE_KEY", cls->name, f->name,
				  json_string_value(json_object_get(rec, "uuid")), key, NULL);
		return;
	}
	xn_changes *cs = xn_changes_new(c->host->db);
	json_t *edit = json_object_get(xn_changes_edit(cs, xn_call_arg_str(c, 0)), f->name);
	if (add) {
		json_t *v = xn_value_check(f->type->val, xn_call_arg(c, 2), "value", NULL);
		if (!v) {
			xn_changes_free(cs);
			xn_call_fail_code(c, "FIELD_TYPE_ERROR", "value", NULL);
			return;
		}
		json_object_set_new(edit, key, v);
	} else {
		json_object_del(edit, key);
	}
	commit_and_return(c, cs);
}

static void do_set_add(xn_call *c, const xn_class *cls, const xn_field *f, bool add)
{
	if (!want_args(c, 2) || !self_record(c, cls))
		return;
	json_t *v = xn_value_check(f->type->elem, xn_call_arg(c, 1), "value", NULL);
	if (!v) {
		xn_call_fail_code(c, "FIELD_TYPE_ERROR", "value", NULL);
		return;
	}
	xn_changes *cs = xn_changes_new(c->host->db);
	json_t *set = json_object_get(xn_changes_edit(cs, xn_call_arg_str(c, 0)), f->name);
	for (size_t i = json_array_size(set); i-- > 0;)
		if (json_equal(json_array_get(set, i), v))
			json_array_remove(set, i);
	if (add)
		json_array_append(set, v);
	json_decref(v);
	commit_and_return(c, cs);
}

static void do_get_all(xn_call *c, const xn_class *cls, bool records)
{
	if (!want_args(c, 0))
		return;
	json_t *all = xn_db_all(c->host->db, cls);
	c->result_type = typeof_f(records ? "(%s ref -> %s record) map" : "%s ref set", cls->name);
	if (records) {
		xn_call_return(c, json_incref(all));
		return;
	}
	json_t *refs = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) json_array_append_new(refs, json_string(k));
	xn_call_return(c, refs);
}

static void do_where(xn_call *c, const xn_class *cls, bool records)
{
	c->result_type = typeof_f(records ? "(%s ref -> %s record) map" : "%s ref set", cls->name);
	if (!want_args(c, 1))
		return;
	const char *expr = json_string_value(xn_call_arg(c, 0));
	if (!expr) {
		xn_call_fail_code(c, "FIELD_TYPE_ERROR", "expr", NULL);
		return;
	}
	xn_error *err = NULL;
	xn_where *w = xn_where_parse(expr, &err);
	if (!w) {
		xn_call_fail(c, err);
		return;
	}
	json_t *out = records ? json_object() : json_array();
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(c->host->db, cls), k, v) {
		if (!xn_where_match(w, v))
			continue;
		if (records)
			json_object_set(out, k, v);
		else
			json_array_append_new(out, json_string(k));
	}
	xn_where_free(w);
	xn_call_return(c, out);
}

static void do_by_uuid(xn_call *c, const xn_class *cls)
{
	if (!want_args(c, 1))
		return;
	const char *uuid = xn_call_arg_str(c, 0);
	c->result_type = typeof_f("%s ref", cls->name);
	const char *ref = xn_db_ref_by_uuid(c->host->db, cls, uuid);
	if (!ref)
		xn_call_fail_code(c, "UUID_INVALID", cls->name, uuid, NULL);
	else
		xn_call_return(c, json_string(ref));
}

static void do_by_name(xn_call *c, const xn_class *cls)
{
	if (!want_args(c, 1))
		return;
	const char *label = xn_call_arg_str(c, 0);
	c->result_type = typeof_f("%s ref set", cls->name);
	json_t *refs = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(c->host->db, cls), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "name_label")), label))
			json_array_append_new(refs, json_string(k));
	xn_call_return(c, refs);
}

/* Implicit create: the record's constructor fields; fields without a
 * default are required. Runtime fields cannot be given. */
static void do_create(xn_call *c, const xn_class *cls)
{
	json_t *args = xn_call_arg(c, 0);
	json_t *rec = json_object();
	for (size_t i = 0; i < cls->nfields; i++) {
		const xn_field *f = &cls->fields[i];
		if (f->qualifier == XN_RO_RUNTIME)
			continue;
		json_t *given = json_object_get(args, f->name);
		if (!given) {
			if (!f->default_json) {
				json_decref(rec);
				xn_call_fail_code(c, "FIELD_TYPE_ERROR", f->name, NULL);
				return;
			}
			continue;
		}
		json_t *v = field_value(c, f, given);
		if (!v) {
			json_decref(rec);
			return;
		}
		json_object_set_new(rec, f->name, v);
	}
	xn_changes *cs = xn_changes_new(c->host->db);
	XN_AUTOFREE char *ref = xn_strdup(xn_changes_add(cs, cls, NULL, rec));
	xn_error *err = NULL;
	if (xn_db_commit(c->host->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, json_string(ref));
}

static void do_destroy(xn_call *c, const xn_class *cls)
{
	if (!self_record(c, cls))
		return;
	xn_changes *cs = xn_changes_new(c->host->db);
	xn_changes_delete(cs, xn_call_arg_str(c, 0));
	commit_and_return(c, cs);
}

static const char *after(const char *s, const char *prefix)
{
	return xn_str_has_prefix(s, prefix) ? s + strlen(prefix) : NULL;
}

/* Field-based verbs: which operation, on which field. */
static bool field_verb(xn_call *c, const xn_class *cls, const char *verb)
{
	static const char *prefixes[] = {"get_", "set_", "add_to_", "remove_from_",
					 "add_", "remove_"};
	for (size_t p = 0; p < XN_ARRAY_LEN(prefixes); p++) {
		const char *fname = after(verb, prefixes[p]);
		const xn_field *f = fname ? xn_class_field(cls, fname) : NULL;
		if (!f)
			continue;
		if (p == 0) {
			if (role_allows(c, XN_ROLE_READ_ONLY))
				do_get_field(c, cls, f);
			return true;
		}
		/* Writes: RW fields, or explicit setters known to be generic. */
		bool explicit = c->msg != NULL;
		if (!explicit && f->qualifier != XN_RW)
			return false;
		if (explicit && !generic_ok(c->method))
			return false;
		if (!role_allows(c, explicit ? c->msg->role : f->set_role))
			return true;
		bool is_map = f->type->kind == XN_T_MAP, is_set = f->type->kind == XN_T_SET;
		if (p == 1)
			do_set_field(c, cls, f);
		else if ((p == 2 || p == 3) && is_map)
			do_map_add(c, cls, f, p == 2);
		else if ((p == 4 || p == 5) && is_set)
			do_set_add(c, cls, f, p == 4);
		else
			return false;
		return true;
	}
	return false;
}

/* Classes whose datamodel has no get_all, get_all_records or
 * get_all_records_where (xapi generates none for them). A session's
 * ref is its secret: listing them would let any caller act as anyone. */
static const char *no_get_all[] = {"session", "user", "LVHD", NULL};

bool xn_class_has_get_all(const xn_class *cls)
{
	for (size_t i = 0; no_get_all[i]; i++)
		if (strcmp(no_get_all[i], cls->name) == 0)
			return false;
	return true;
}

bool xn_accessor_call(xn_call *c, const xn_class *cls, const char *verb)
{
	if (cls->flags & (XN_CLS_RECORD_ONLY | XN_CLS_INTERNAL))
		return false;
	if (!xn_class_has_get_all(cls) &&
	    (strcmp(verb, "get_all") == 0 || strcmp(verb, "get_all_records") == 0 ||
	     strcmp(verb, "get_all_records_where") == 0 || strcmp(verb, "get_all_where") == 0))
		return false;
	if (strcmp(verb, "get_record") == 0) {
		c->result_type = typeof_f("%s record", cls->name);
		if (role_allows(c, XN_ROLE_READ_ONLY) && want_args(c, 1)) {
			json_t *rec = self_record(c, cls);
			if (rec)
				xn_call_return(c, json_incref(rec));
		}
		return true;
	}
	if (strcmp(verb, "get_all") == 0 || strcmp(verb, "get_all_records") == 0) {
		if (role_allows(c, XN_ROLE_READ_ONLY))
			do_get_all(c, cls, strcmp(verb, "get_all_records") == 0);
		return true;
	}
	if (strcmp(verb, "get_all_records_where") == 0 || strcmp(verb, "get_all_where") == 0) {
		if (role_allows(c, XN_ROLE_READ_ONLY))
			do_where(c, cls, strcmp(verb, "get_all_records_where") == 0);
		return true;
	}
	if (strcmp(verb, "get_by_uuid") == 0) {
		if (role_allows(c, XN_ROLE_READ_ONLY))
			do_by_uuid(c, cls);
		return true;
	}
	if (strcmp(verb, "get_by_name_label") == 0 && cls->name_label) {
		if (role_allows(c, XN_ROLE_READ_ONLY))
			do_by_name(c, cls);
		return true;
	}
	if (c->msg && (c->msg->flags & XN_MSG_IMPLICIT)) {
		if (strcmp(verb, "create") == 0) {
			do_create(c, cls);
			return true;
		}
		if (strcmp(verb, "destroy") == 0) {
			do_destroy(c, cls);
			return true;
		}
	}
	return field_verb(c, cls, verb);
}
