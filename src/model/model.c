/* model.c: builds the class, field, message and enum tables from the
 * declarations in datamodel.def, and answers questions about them
 * (model.h). Types are parsed from their datamodel spelling once, at
 * init, and interned. */
#include "model/model.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the declarations ---------------------------------------------- */

enum {
#define XN_ENUM(n, v)
#define XN_CLASS(c, f) XN_CLSID_##c,
#define XN_FIELD(c, n, t, q, d, r)
#define XN_MSG(c, n, res, role, fl, ...)
#include "model/datamodel.def"
#undef XN_ENUM
#undef XN_CLASS
#undef XN_FIELD
#undef XN_MSG
	XN_NCLASSES_DECLARED
};

static xn_enum enums[] = {
#define XN_ENUM(n, v) {#n, v, NULL, 0},
#define XN_CLASS(c, f)
#define XN_FIELD(c, n, t, q, d, r)
#define XN_MSG(c, n, res, role, fl, ...)
#include "model/datamodel.def"
#undef XN_ENUM
#undef XN_CLASS
#undef XN_FIELD
#undef XN_MSG
};

struct field_decl {
	int cls;
	const char *name, *type, *dflt;
	int qual, role;
};

static const struct field_decl field_decls[] = {
#define XN_ENUM(n, v)
#define XN_CLASS(c, f)
#define XN_FIELD(c, n, t, q, d, r) {XN_CLSID_##c, #n, t, d, q, r},
#define XN_MSG(c, n, res, role, fl, ...)
#include "model/datamodel.def"
#undef XN_ENUM
#undef XN_CLASS
#undef XN_FIELD
#undef XN_MSG
};

struct param_decl {
	const char *type, *name;
	int optional;
};

struct msg_decl {
	int cls;
	const char *name, *result;
	int role, flags;
	const struct param_decl *params;
};

#define XN_P(t, n, o) {t, n, o},
#define XN_ENUM(n, v)
#define XN_CLASS(c, f)
#define XN_FIELD(c, n, t, q, d, r)
#define XN_MSG(c, n, res, role, fl, ...) \
	static const struct param_decl params_##c##_##n[] = {__VA_ARGS__{NULL, NULL, 0}};
#include "model/datamodel.def"
#undef XN_MSG
#define XN_MSG(c, n, res, role, fl, ...) {XN_CLSID_##c, #n, res, role, fl, params_##c##_##n},
static const struct msg_decl msg_decls[] = {
#include "model/datamodel.def"
};
#undef XN_ENUM
#undef XN_CLASS
#undef XN_FIELD
#undef XN_MSG
#undef XN_P

/* Xenia's own messages, beside the XenAPI's: local user accounts (xapi
 * leaves users to external directories). Declared like the others, so
 * dispatch, parameter checks and roles apply to them unchanged. */
static const struct param_decl ext_add_user[] = {
	{"string", "user_name", 0}, {"string", "password", 0}, {"string", "role", 0},
	{NULL, NULL, 0}};
static const struct param_decl ext_set_password[] = {
	{"subject ref", "self", 0}, {"string", "password", 0}, {NULL, NULL, 0}};
static const struct msg_decl ext_msgs[] = {
	{XN_CLSID_subject, "xenia_add_user", "subject ref", XN_ROLE_POOL_ADMIN, 0, ext_add_user},
	{XN_CLSID_subject, "xenia_set_password", "void", XN_ROLE_POOL_ADMIN, 0, ext_set_password},
};

struct class_decl {
	const char *name;
	int flags;
};

static const struct class_decl class_decls[] = {
#define XN_ENUM(n, v)
#define XN_CLASS(c, f) {#c, f},
#define XN_FIELD(c, n, t, q, d, r)
#define XN_MSG(c, n, res, role, fl, ...)
#include "model/datamodel.def"
#undef XN_ENUM
#undef XN_CLASS
#undef XN_FIELD
#undef XN_MSG
};

/* Xenia's own classes: state the daemon keeps beside the XenAPI objects,
 * stored and committed like them but never visible through the API. */
static const struct field_decl internal_fields[] = {
	/* One per running QEMU: what is needed to find it again after a
	 * daemon restart. */
	{0, "uuid", "string", NULL, XN_RO_RUNTIME, XN_ROLE_NONE},
	{0, "VM", "VM ref", "\"OpaqueRef:NULL\"", XN_RO_RUNTIME, XN_ROLE_NONE},
	{0, "pid", "int", "0", XN_RO_RUNTIME, XN_ROLE_NONE},
	{0, "start_ticks", "int", "0", XN_RO_RUNTIME, XN_ROLE_NONE},
	{0, "run_dir", "string", "\"\"", XN_RO_RUNTIME, XN_ROLE_NONE},
	{0, "engine", "string", "\"\"", XN_RO_RUNTIME, XN_ROLE_NONE},
	/* User accounts: the password hash of a local user; the user's
	 * role is the XenAPI subject's (root has none: it is the local
	 * superuser). */
	{1, "uuid", "string", NULL, XN_RO_RUNTIME, XN_ROLE_NONE},
	{1, "name", "string", "\"\"", XN_RO_RUNTIME, XN_ROLE_NONE},
	{1, "password_hash", "string", "\"\"", XN_RO_RUNTIME, XN_ROLE_NONE},
	{1, "role", "string", "\"read-only\"", XN_RO_RUNTIME, XN_ROLE_NONE},
	{1, "subject", "subject ref", "\"OpaqueRef:NULL\"", XN_RO_RUNTIME, XN_ROLE_NONE},
};
static const char *internal_classes[] = {"xn_domain", "xn_account"};

/* ---- the tables built from them ------------------------------------ */

static void check_relations(void);

static xn_class *classes;
static size_t nclasses;
static json_t *class_index;    /* name -> index */
static json_t *class_index_ci; /* lowercase name -> index */
static json_t *type_cache;     /* spelling -> (xn_type *) as integer */

static const char *role_names[] = {"read-only", "vm-operator", "vm-admin",
				   "vm-power-admin", "pool-operator", "pool-admin"};

const char *xn_role_name(enum xn_role r)
{
	return r < XN_ROLE_NONE ? role_names[r] : "none";
}

int xn_role_from_name(const char *name)
{
	for (int i = 0; i < (int)XN_ARRAY_LEN(role_names); i++)
		if (strcasecmp(name, role_names[i]) == 0)
			return i;
	return -1;
}

const xn_enum *xn_model_enum(const char *name)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(enums); i++)
		if (strcmp(enums[i].name, name) == 0)
			return &enums[i];
	return NULL;
}

bool xn_enum_has(const xn_enum *e, const char *value)
{
	for (size_t i = 0; i < e->nvalues; i++)
		if (strcmp(e->values[i], value) == 0)
			return true;
	return false;
}

/* Type grammar (datamodel spelling):
 *   t := "string" | "int" | "float" | "bool" | "datetime" | "void"
 *      | NAME "ref" | NAME "record" | "enum" NAME | t "set" | t "option"
 *      | "(" t "->" t ")" "map"                                         */
static const xn_type *parse_type(const char **s);

static void skip_ws(const char **s)
{
	while (isspace((unsigned char)**s))
		(*s)++;
}

static char *word(const char **s)
{
	skip_ws(s);
	const char *b = *s;
	while (**s && (isalnum((unsigned char)**s) || **s == '_' || **s == '<' || (**s == '>' && *s > b && (*s)[-1] != '-')))
		(*s)++;
	return xn_strndup(b, (size_t)(*s - b));
}

static xn_type *mk(xn_kind k)
{
	xn_type *t = xn_calloc(1, sizeof(*t));
	t->kind = k;
	return t;
}

static const xn_type *parse_atom(const char **s)
{
	skip_ws(s);
	if (**s == '(') {
		(*s)++;
		xn_type *t = mk(XN_T_MAP);
		t->key = parse_type(s);
		skip_ws(s);
		if (strncmp(*s, "->", 2) != 0)
			abort();
		*s += 2;
		t->val = parse_type(s);
		skip_ws(s);
		if (**s != ')')
			abort();
		(*s)++;
		XN_AUTOFREE char *w = word(s);
		if (strcmp(w, "map") != 0)
			abort();
		return t;
	}
	XN_AUTOFREE char *w = word(s);
	static const struct {
		const char *n;
		xn_kind k;
	} simple[] = {{"string", XN_T_STRING}, {"int", XN_T_INT}, {"float", XN_T_FLOAT},
		      {"bool", XN_T_BOOL}, {"datetime", XN_T_DATETIME}, {"void", XN_T_VOID}};
	for (size_t i = 0; i < XN_ARRAY_LEN(simple); i++)
		if (strcmp(w, simple[i].n) == 0)
			return mk(simple[i].k);
	if (strcmp(w, "enum") == 0) {
		XN_AUTOFREE char *n = word(s);
		xn_type *t = mk(XN_T_ENUM);
		t->en = xn_model_enum(n);
		if (!t->en) {
			fprintf(stderr, "model: unknown enum '%s'\n", n);
			abort();
		}
		t->name = t->en->name;
		return t;
	}
	/* NAME ref | NAME record */
	const char *save = *s;
	XN_AUTOFREE char *w2 = word(s);
	xn_type *t = NULL;
	if (strcmp(w2, "ref") == 0)
		t = mk(XN_T_REF);
	else if (strcmp(w2, "record") == 0)
		t = mk(XN_T_RECORD);
	if (!t) {
		*s = save;
		fprintf(stderr, "model: cannot parse type at '%s'\n", w);
		abort();
	}
	t->name = xn_strdup(w);
	return t;
}

static const xn_type *parse_type(const char **s)
{
	const xn_type *t = parse_atom(s);
	for (;;) {
		const char *save = *s;
		XN_AUTOFREE char *w = word(s);
		if (strcmp(w, "set") == 0) {
			xn_type *st = mk(XN_T_SET);
			st->elem = t;
			t = st;
		} else if (strcmp(w, "option") == 0) {
			xn_type *ot = mk(XN_T_OPTION);
			ot->elem = t;
			t = ot;
		} else {
			*s = save;
			return t;
		}
	}
}

const xn_type *xn_type_parse(const char *spelling)
{
	json_t *hit = json_object_get(type_cache, spelling);
	if (hit)
		return (const xn_type *)(uintptr_t)json_integer_value(hit);
	const char *s = spelling;
	if (strcmp(spelling, "an event batch") == 0) /* event.from's result */
		s = "event_batch record";
	const xn_type *t = parse_type(&s);
	skip_ws(&s);
	if (*s) {
		fprintf(stderr, "model: trailing text in type '%s'\n", spelling);
		abort();
	}
	json_object_set_new(type_cache, spelling, json_integer((json_int_t)(uintptr_t)t));
	return t;
}

bool xn_type_is_ref_to(const xn_type *t, const char *cls)
{
	return t->kind == XN_T_REF && strcmp(t->name, cls) == 0;
}

/* xe's name for a field: dashes for underscores; a reference named after
 * its class prints as that class's uuid ("VM" -> "vm-uuid"), a set of
 * them as "vbd-uuids" (xapi's records.ml conventions). */
static char *cli_name_of(const char *field, const xn_type *t)
{
	static const struct {
		const char *field, *cli;
	} special[] = {{"domid", "dom-id"}, {"suspend_VDI", "suspend-VDI-uuid"},
		       {"consoles", "console-uuids"}};
	for (size_t i = 0; i < XN_ARRAY_LEN(special); i++)
		if (strcmp(field, special[i].field) == 0)
			return xn_strdup(special[i].cli);
	const xn_type *ref = t->kind == XN_T_SET ? t->elem : t;
	if (ref->kind == XN_T_REF) {
		size_t n = strlen(ref->name);
		bool one = t->kind == XN_T_REF && strcasecmp(field, ref->name) == 0;
		bool many = t->kind == XN_T_SET && strlen(field) == n + 1 &&
			    strncasecmp(field, ref->name, n) == 0 && field[n] == 's';
		if (one || many) {
			char *s = xn_asprintf("%s-uuid%s", ref->name, many ? "s" : "");
			for (char *p = s; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			return s;
		}
	}
	char *s = xn_strdup(field);
	for (char *p = s; *p; p++)
		if (*p == '_')
			*p = '-';
	return s;
}

static void add_field(xn_class *c, const struct field_decl *d)
{
	c->fields = xn_realloc(c->fields, (c->nfields + 1) * sizeof(xn_field));
	xn_field *f = &c->fields[c->nfields++];
	memset(f, 0, sizeof(*f));
	f->name = d->name;
	f->type_str = d->type;
	f->type = xn_type_parse(d->type);
	f->qualifier = d->qual;
	f->default_json = d->dflt;
	f->set_role = d->role;
	f->cli_name = cli_name_of(d->name, f->type);
}

static void add_message(xn_class *c, const struct msg_decl *d)
{
	c->messages = xn_realloc(c->messages, (c->nmessages + 1) * sizeof(xn_message));
	xn_message *m = &c->messages[c->nmessages++];
	memset(m, 0, sizeof(*m));
	m->name = d->name;
	m->wire_name = xn_asprintf("%s.%s", c->name, d->name);
	m->result_str = d->result;
	m->result = xn_type_parse(d->result);
	m->role = d->role;
	m->flags = d->flags;
	for (const struct param_decl *p = d->params; p->name; p++)
		m->nparams++;
	m->params = xn_calloc(m->nparams, sizeof(xn_param));
	for (size_t i = 0; i < m->nparams; i++) {
		m->params[i].type_str = d->params[i].type;
		m->params[i].name = d->params[i].name;
		m->params[i].optional = d->params[i].optional;
		m->params[i].type = xn_type_parse(d->params[i].type);
		if (!d->params[i].optional)
			m->nrequired++;
	}
}

void xn_model_init(void)
{
	if (classes)
		return;
	type_cache = json_object();
	class_index = json_object();
	class_index_ci = json_object();
	for (size_t i = 0; i < XN_ARRAY_LEN(enums); i++) {
		XN_AUTOFREE char *copy = xn_strdup(enums[i].values_str);
		enums[i].values = xn_strv_new();
		for (char *save, *tok = strtok_r(copy, " ", &save); tok;
		     tok = strtok_r(NULL, " ", &save))
			xn_strv_push(&enums[i].values, tok);
		enums[i].nvalues = xn_strv_len(enums[i].values);
	}
	size_t ndecl = XN_ARRAY_LEN(class_decls);
	nclasses = ndecl + XN_ARRAY_LEN(internal_classes);
	classes = xn_calloc(nclasses, sizeof(xn_class));
	for (size_t i = 0; i < nclasses; i++) {
		xn_class *c = &classes[i];
		c->id = (int)i;
		if (i < ndecl) {
			c->name = class_decls[i].name;
			c->flags = class_decls[i].flags;
		} else {
			c->name = internal_classes[i - ndecl];
			c->flags = XN_CLS_INTERNAL | XN_CLS_NO_EVENTS;
		}
		c->lower = xn_strdup(c->name);
		for (char *p = c->lower; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		json_object_set_new(class_index, c->name, json_integer((json_int_t)i));
		json_object_set_new(class_index_ci, c->lower, json_integer((json_int_t)i));
	}
	for (size_t i = 0; i < XN_ARRAY_LEN(field_decls); i++)
		add_field(&classes[field_decls[i].cls], &field_decls[i]);
	for (size_t i = 0; i < XN_ARRAY_LEN(internal_fields); i++)
		add_field(&classes[ndecl + (size_t)internal_fields[i].cls], &internal_fields[i]);
	for (size_t i = 0; i < XN_ARRAY_LEN(msg_decls); i++)
		add_message(&classes[msg_decls[i].cls], &msg_decls[i]);
	for (size_t i = 0; i < XN_ARRAY_LEN(ext_msgs); i++)
		add_message(&classes[ext_msgs[i].cls], &ext_msgs[i]);
	/* session.change_password lists no roles in the datamodel: every user
	 * may call it for themselves (it checks the old password). */
	xn_message *cp = (xn_message *)xn_class_message(&classes[XN_CLSID_session],
							"change_password");
	if (cp)
		cp->role = XN_ROLE_READ_ONLY;
	for (size_t i = 0; i < nclasses; i++) {
		xn_class *c = &classes[i];
		for (size_t j = 0; j < c->nfields; j++)
			c->fields[j].cls = c;
		for (size_t j = 0; j < c->nmessages; j++)
			c->messages[j].cls = c;
		c->name_label = xn_class_field(c, "name_label");
	}
	check_relations();
}

size_t xn_model_nclasses(void)
{
	return nclasses;
}

const xn_class *xn_model_class_at(size_t i)
{
	return i < nclasses ? &classes[i] : NULL;
}

const xn_class *xn_model_class(const char *name)
{
	json_t *i = name ? json_object_get(class_index, name) : NULL;
	return i ? &classes[json_integer_value(i)] : NULL;
}

const xn_class *xn_model_class_ci(const char *name)
{
	if (!name)
		return NULL;
	XN_AUTOFREE char *lower = xn_strdup(name);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	json_t *i = json_object_get(class_index_ci, lower);
	return i ? &classes[json_integer_value(i)] : NULL;
}

const xn_field *xn_class_field(const xn_class *c, const char *name)
{
	for (size_t i = 0; i < c->nfields; i++)
		if (strcmp(c->fields[i].name, name) == 0)
			return &c->fields[i];
	return NULL;
}

/* CLI names compare without case and with '_' and '-' alike (xapi's xe
 * itself spells a few fields with underscores, e.g. qos_algorithm_type). */
bool xn_cli_name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a == '_' ? '-' : (char)tolower((unsigned char)*a);
		char y = *b == '_' ? '-' : (char)tolower((unsigned char)*b);
		if (x != y)
			return false;
	}
	return *a == *b;
}

const xn_field *xn_class_field_cli(const xn_class *c, const char *cli_name)
{
	for (size_t i = 0; i < c->nfields; i++)
		if (xn_cli_name_eq(c->fields[i].cli_name, cli_name))
			return &c->fields[i];
	return NULL;
}

const xn_message *xn_class_message(const xn_class *c, const char *name)
{
	for (size_t i = 0; i < c->nmessages; i++)
		if (strcmp(c->messages[i].name, name) == 0)
			return &c->messages[i];
	return NULL;
}

static const xn_relation relations[] = {
	{"VBD", "VM", "VM", "VBDs"},
	{"VBD", "VDI", "VDI", "VBDs"},
	{"VIF", "VM", "VM", "VIFs"},
	{"VIF", "network", "network", "VIFs"},
	{"console", "VM", "VM", "consoles"},
	{"VDI", "SR", "SR", "VDIs"},
	{"PBD", "SR", "SR", "PBDs"},
	{"PBD", "host", "host", "PBDs"},
	{"PIF", "host", "host", "PIFs"},
	{"PIF", "network", "network", "PIFs"},
	{"VM", "resident_on", "host", "resident_VMs"},
	{"VM", "snapshot_of", "VM", "snapshots"},
	{"VM", "parent", "VM", "children"},
	{"VDI", "snapshot_of", "VDI", "snapshots"},
	{"task", "subtask_of", "task", "subtasks"},
	{"host_cpu", "host", "host", "host_CPUs"},
	{"crashdump", "VM", "VM", "crash_dumps"},
	{"host_crashdump", "host", "host", "crashdumps"},
	{"Bond", "master", "PIF", "bond_master_of"},
	{"PIF", "bond_slave_of", "Bond", "slaves"},
	{"VLAN", "tagged_PIF", "PIF", "VLAN_slave_of"},
	{"VM", "appliance", "VM_appliance", "VMs"},
	{"VTPM", "VM", "VM", "VTPMs"},
	{"VUSB", "VM", "VM", "VUSBs"},
};

const xn_relation *xn_model_relations(size_t *n)
{
	*n = XN_ARRAY_LEN(relations);
	return relations;
}

static void check_relations(void)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(relations); i++) {
		const xn_relation *r = &relations[i];
		const xn_class *one = xn_model_class(r->one_cls);
		const xn_class *many = xn_model_class(r->many_cls);
		if (!one || !many || !xn_class_field(one, r->one_field) ||
		    !xn_class_field(many, r->many_field)) {
			fprintf(stderr, "model: bad relation %s.%s <-> %s.%s\n", r->one_cls,
				r->one_field, r->many_cls, r->many_field);
			abort();
		}
	}
}

/* ---- values --------------------------------------------------------- */

static json_t *zero_of(const xn_type *t)
{
	switch (t->kind) {
	case XN_T_INT:
		return json_integer(0);
	case XN_T_FLOAT:
		return json_real(0.0);
	case XN_T_BOOL:
		return json_false();
	case XN_T_DATETIME:
		return json_string("19700101T00:00:00Z");
	case XN_T_REF:
		return json_string("OpaqueRef:NULL");
	case XN_T_ENUM:
		return json_string(t->en->nvalues ? t->en->values[0] : "");
	case XN_T_SET:
		return json_array();
	case XN_T_MAP:
	case XN_T_RECORD:
		return json_object();
	default:
		return json_string("");
	}
}

json_t *xn_field_default(const xn_field *f)
{
	if (f->default_json) {
		json_t *v = json_loads(f->default_json, JSON_DECODE_ANY, NULL);
		if (v)
			return v;
	}
	return zero_of(f->type);
}

json_t *xn_record_new(const xn_class *c)
{
	json_t *r = json_object();
	for (size_t i = 0; i < c->nfields; i++)
		json_object_set_new(r, c->fields[i].name, xn_field_default(&c->fields[i]));
	return r;
}

static bool parse_int_string(const char *s, json_int_t *out)
{
	if (!*s)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

json_t *xn_value_check(const xn_type *t, json_t *v, const char *what, xn_error **err)
{
	if (!v) {
		xn_fail(err, "FIELD_TYPE_ERROR", what, NULL);
		return NULL;
	}
	switch (t->kind) {
	case XN_T_STRING:
		if (json_is_string(v))
			return json_incref(v);
		break;
	case XN_T_DATETIME:
		if (json_is_string(v))
			return json_incref(v);
		break;
	case XN_T_INT: {
		if (json_is_integer(v))
			return json_incref(v);
		json_int_t i;
		if (json_is_string(v) && parse_int_string(json_string_value(v), &i))
			return json_integer(i);
		break;
	}
	case XN_T_FLOAT:
		if (json_is_number(v))
			return json_real(json_number_value(v));
		if (json_is_string(v)) {
			char *end;
			double d = strtod(json_string_value(v), &end);
			if (*json_string_value(v) && !*end)
				return json_real(d);
		}
		break;
	case XN_T_BOOL:
		if (json_is_boolean(v))
			return json_incref(v);
		if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
					  strcmp(json_string_value(v), "false") == 0))
			return json_boolean(strcmp(json_string_value(v), "true") == 0);
		break;
	case XN_T_REF:
		if (json_is_string(v))
			return json_incref(v);
		break;
	case XN_T_ENUM:
		if (json_is_string(v)) {
			/* xapi matches enum values case-insensitively on input */
			for (size_t i = 0; i < t->en->nvalues; i++)
				if (strcasecmp(t->en->values[i], json_string_value(v)) == 0)
					return json_string(t->en->values[i]);
			xn_fail(err, "INVALID_VALUE", what, json_string_value(v), NULL);
			return NULL;
		}
		break;
	case XN_T_SET: {
		if (!json_is_array(v))
			break;
		json_t *out = json_array();
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) {
			json_t *c = xn_value_check(t->elem, e, what, err);
			if (!c) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, c);
		}
		return out;
	}
	case XN_T_MAP: {
		if (!json_is_object(v))
			break;
		json_t *out = json_object();
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e) {
			json_t *c = xn_value_check(t->val, e, what, err);
			if (!c) {
				json_decref(out);
				return NULL;
			}
			json_object_set_new(out, k, c);
		}
		return out;
	}
	case XN_T_RECORD:
		if (json_is_object(v))
			return json_incref(v);
		break;
	case XN_T_OPTION:
		return xn_value_check(t->elem, v, what, err);
	case XN_T_VOID:
		return json_incref(v);
	}
	xn_fail(err, "FIELD_TYPE_ERROR", what, NULL);
	return NULL;
}

char *xn_datetime_str(double t)
{
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	char buf[32];
	strftime(buf, sizeof(buf), "%Y%m%dT%H:%M:%SZ", &tm);
	return xn_strdup(buf);
}

json_t *xn_datetime_now(void)
{
	XN_AUTOFREE char *s = xn_datetime_str(xn_wall_time());
	return json_string(s);
}
