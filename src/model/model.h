/* model.h: the XenAPI datamodel, declared once (datamodel.def) and
 * queried everywhere else.
 *
 * Every class, field and message is described by data: its XenAPI name,
 * its type (parsed from the datamodel's type syntax, e.g.
 * "(string -> enum vm_operations) map"), its qualifier and default, and
 * the lowest role allowed to call or set it. The SQL schema, the generic
 * accessors of the API, the event records and the `xe` list/param
 * commands are all derived from these tables.
 *
 * Records are jansson objects keyed by XenAPI field names, with values
 * in their JSON-RPC form: strings, integers, reals, booleans, datetimes
 * as "20250319T04:16:24Z", refs as "OpaqueRef:...", sets as arrays and
 * maps as objects. */
#ifndef XN_MODEL_H
#define XN_MODEL_H

#include <jansson.h>

#include "util/err.h"

typedef enum xn_kind {
	XN_T_VOID,
	XN_T_STRING,
	XN_T_INT,
	XN_T_FLOAT,
	XN_T_BOOL,
	XN_T_DATETIME,
	XN_T_REF,     /* name = class */
	XN_T_ENUM,    /* en = the enum */
	XN_T_SET,     /* elem */
	XN_T_MAP,     /* key, val */
	XN_T_RECORD,  /* name = class */
	XN_T_OPTION,  /* elem (xapi's "option": a value or nothing) */
} xn_kind;

typedef struct xn_enum {
	const char *name;
	const char *values_str;  /* space-separated, as declared */
	char **values;           /* parsed at init */
	size_t nvalues;
} xn_enum;

typedef struct xn_type {
	xn_kind kind;
	const char *name;        /* class (ref, record) */
	const xn_enum *en;
	const struct xn_type *elem, *key, *val;
} xn_type;

/* Field qualifiers (XenAPI). */
enum { XN_RO_RUNTIME, XN_RO_CONSTRUCTOR, XN_RW };

/* Roles, lowest first. A message or setter declares the lowest role
 * allowed; every higher role may call it too. XN_ROLE_NONE: nobody but
 * the local superuser (internal messages). */
enum xn_role {
	XN_ROLE_READ_ONLY,
	XN_ROLE_VM_OPERATOR,
	XN_ROLE_VM_ADMIN,
	XN_ROLE_VM_POWER_ADMIN,
	XN_ROLE_POOL_OPERATOR,
	XN_ROLE_POOL_ADMIN,
	XN_ROLE_NONE,
};
const char *xn_role_name(enum xn_role r);     /* "vm-admin" */
int xn_role_from_name(const char *name);       /* -1 if unknown */

typedef struct xn_field {
	const char *name;        /* XenAPI name, e.g. "name_label" */
	const char *type_str;
	const xn_type *type;
	int qualifier;
	const char *default_json; /* NULL: no default (required in create) */
	int set_role;            /* role for set_/add_to_/remove_from_ */
	char *cli_name;          /* xe's name, e.g. "name-label" */
	const struct xn_class *cls;
} xn_field;

/* Class flags. */
enum {
	XN_CLS_RECORD_ONLY = 1 << 0, /* a record type, not a stored table */
	XN_CLS_NO_EVENTS = 1 << 1,   /* never reported by event.from */
	XN_CLS_INTERNAL = 1 << 2,    /* Xenia's own state, not in the API */
};

typedef struct xn_param {
	const char *type_str;
	const char *name;
	int optional;
	const xn_type *type;
} xn_param;

/* Message flags. */
enum {
	XN_MSG_NO_SESSION = 1 << 0, /* no session parameter (login) */
	XN_MSG_IMPLICIT = 1 << 1,   /* generated (create/destroy) */
};

typedef struct xn_message {
	const struct xn_class *cls;
	const char *name;
	const char *wire_name;     /* "VM.start" */
	const char *result_str;
	const xn_type *result;
	int role;
	int flags;
	xn_param *params;          /* after the session parameter */
	size_t nparams;
	size_t nrequired;          /* params without the optional mark */
} xn_message;

typedef struct xn_class {
	int id;
	const char *name;          /* "VM" */
	char *lower;               /* "vm": event class names, table names */
	int flags;
	xn_field *fields;
	size_t nfields;
	xn_message *messages;
	size_t nmessages;
	const xn_field *name_label; /* NULL if the class has none */
} xn_class;

/* Load the tables; call once at start. Aborts on a malformed declaration
 * (a programming error, caught by the unit tests). */
void xn_model_init(void);

size_t xn_model_nclasses(void);
const xn_class *xn_model_class_at(size_t i);
/* Exact name ("VM") or, when ci is true, case-insensitive ("vm"). */
const xn_class *xn_model_class(const char *name);
const xn_class *xn_model_class_ci(const char *name);
const xn_field *xn_class_field(const xn_class *c, const char *name);
const xn_field *xn_class_field_cli(const xn_class *c, const char *cli_name);
/* Whether two CLI names are the same: no case, '_' and '-' alike. */
bool xn_cli_name_eq(const char *a, const char *b);
const xn_message *xn_class_message(const xn_class *c, const char *name);
const xn_enum *xn_model_enum(const char *name);
bool xn_enum_has(const xn_enum *e, const char *value);

/* Parse a type in the datamodel's syntax; results are interned. */
const xn_type *xn_type_parse(const char *s);
bool xn_type_is_ref_to(const xn_type *t, const char *cls);

/* Check (and where xapi does, convert) a JSON value against a type.
 * Returns a new reference to the value to store, or NULL with
 * FIELD_TYPE_ERROR [what] / INVALID_VALUE set. Ints given as strings of
 * digits are converted (XML-RPC carries ints as text). */
json_t *xn_value_check(const xn_type *t, json_t *v, const char *what, xn_error **err);

/* A new record of class c with every field set to its default (or the
 * zero value of its type). */
json_t *xn_record_new(const xn_class *c);
/* Default value of a field (new reference). */
json_t *xn_field_default(const xn_field *f);

/* A one-to-many relation: the "one" side is a ref field (VBD.VM), the
 * "many" side a ref-set field kept equal to every object pointing at it
 * (VM.VBDs). The database maintains the many side on every commit. */
typedef struct xn_relation {
	const char *one_cls, *one_field;
	const char *many_cls, *many_field;
} xn_relation;
const xn_relation *xn_model_relations(size_t *n);

/* Datetime in XenAPI form ("20250319T04:16:24Z"), caller frees. */
char *xn_datetime_str(double t);
json_t *xn_datetime_now(void);

#endif
