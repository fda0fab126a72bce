/* cli.h: the `xe` command-line client, shared declarations.
 *
 * `xe` is a thin XenAPI client: it parses `xe <command> key=value ...
 * --flag` (args.c), finds the command in one table (commands.c: the
 * hand-written commands plus `<class>-list/-param-*` generated from the
 * datamodel for every class in classes.c), logs in over JSON-RPC
 * (rpc.c), runs the handler and prints records in xe's layout
 * (format.c). Pure parts (parsing, rendering, filtering, the console's
 * HTTP handshake) are kept apart from I/O so tests/unit/test_cli.c can
 * drive them without a daemon. */
#ifndef XN_CLI_H
#define XN_CLI_H

#include <jansson.h>
#include <stdio.h>
#include <sys/types.h>

#include "model/model.h"
#include "util/err.h"

/* Errors the CLI raises itself (not XenAPI failures): params[0] is the
 * whole line printed to stderr. */
#define XE_CLI_ERROR "XE_CLI_ERROR"
int xe_fail(xn_error **err, const char *fmt, ...) XN_PRINTF(2, 3);

/* ---- arguments (args.c) -------------------------------------------- */

typedef struct xe_param {
	char *key;   /* "name-label", or "other-config:foo" for map params */
	char *value;
} xe_param;

typedef struct xe_args {
	char **words;      /* bare words: [0] is the command, [1] e.g. help's topic */
	xe_param *params;  /* in command-line order */
	size_t nparams;
	/* Connection options (-s/-p/-u/-pw/-pwf/--nossl or server= ...). */
	char *server, *username, *password, *pwfile;
	int port;          /* 0: default */
	bool nossl;
} xe_args;

/* Parse argv (without argv[0]) into a; `--foo` is foo=true, `-s host`
 * a switch pair, anything else splits at its first '='. Connection
 * options go to their fields, the rest to a->params. Returns 0 or -1. */
int xe_args_parse(xe_args *a, int argc, char *const *argv, xn_error **err);
/* Apply defaults from `~/.xe`-style text (key=value lines) or from
 * XE_EXTRA_ARGS (comma-separated) to connection options not yet set. */
void xe_args_defaults(xe_args *a, const char *text, char sep);
void xe_args_clear(xe_args *a);
/* The last value given for key, or NULL. Borrowed. */
const char *xe_arg(const xe_args *a, const char *key);
/* True if key was given as true/yes/on/1 (e.g. from --key). */
bool xe_arg_flag(const xe_args *a, const char *key);
/* Whether word is one of the space-separated words (parameter lists). */
bool xe_words_has(const char *words, const char *word);
/* Parameters every command accepts and that never act as filters. */
bool xe_is_std_param(const char *key);

/* "512MiB", "1GiB", "4096", k/KiB/m/MiB/g/GiB/t/TiB (powers of 1024,
 * case-insensitive, also kb/mb/...) into bytes. Returns 0 or -1. */
int xe_parse_size(const char *s, int64_t *out, xn_error **err);
/* true/yes/on/1 and false/no/off/0 (case-insensitive). */
int xe_parse_bool(const char *s, bool *out, xn_error **err);
/* Join values for --minimal: comma-separated, with ',' and '\' escaped
 * as "\," and "\\". Caller frees. */
char *xe_minimal_join(char *const *values);

/* ---- datamodel views of the CLI classes (classes.c) ----------------- */

/* A record source used while rendering: the record of class cls with
 * reference ref (borrowed), or NULL if it is not in the database. */
typedef struct xe_lookup {
	json_t *(*record)(void *ctx, const char *cls, const char *ref);
	void *ctx;
} xe_lookup;

/* One CLI class: `vm`, `template` and `snapshot` are all views of VM. */
typedef struct xe_class_spec {
	const char *cli;        /* "vm" */
	const char *cls;        /* XenAPI class, "VM" */
	const char *fixed;      /* filters every listing applies, "k=v k=v" */
	const char *columns;    /* default `-list` columns */
} xe_class_spec;

const xe_class_spec *xe_class_specs(size_t *n);
const xe_class_spec *xe_class_spec_find(const char *cli);

/* A field as xe shows it: a datamodel field, or a derived one (a field
 * of an object the record points at, e.g. VM memory-actual). */
typedef struct xe_derived xe_derived;

typedef struct xe_row {
	const char *key;            /* CLI name, borrowed */
	const xn_field *field;      /* NULL for derived rows */
	const xe_derived *derived;
	bool hidden;                /* not in param-list, still gettable */
	char *value;                /* rendered lazily; owned */
} xe_row;

typedef struct xe_rec {
	const xe_class_spec *spec;
	const xn_class *cls;
	char *ref;
	json_t *json;               /* owned reference */
	xe_row *rows;
	size_t nrows;
} xe_rec;

/* A CLI record over json (a new reference is taken). */
xe_rec *xe_rec_new(const xe_class_spec *spec, const char *ref, json_t *json);
void xe_rec_free(xe_rec *r);
/* The row with this CLI name (case-insensitive), or NULL. */
xe_row *xe_rec_row(xe_rec *r, const char *key);
/* The row's value as xe prints it (borrowed, cached in the row). */
const char *xe_row_value(xe_rec *r, xe_row *row, const xe_lookup *lk);
/* " ( RO)", " ( RW)", " (SRO)", " (SRW)", " (MRO)" or " (MRW)". */
const char *xe_row_suffix(const xe_row *row);
/* Raw JSON value of a datamodel row (borrowed), NULL for derived rows. */
json_t *xe_row_raw(const xe_rec *r, const xe_row *row);
/* The datamodel field a row shows: its own, or the field a derived row
 * reads through a reference (NULL for computed rows). */
const xn_field *xe_row_field(const xe_rec *r, const xe_row *row);
/* The row's raw JSON value (borrowed), a derived row's read through lk;
 * NULL when there is none (e.g. the reference is NULL). */
json_t *xe_row_json(const xe_rec *r, const xe_row *row, const xe_lookup *lk);

/* Whether a field can be set: RW in the model, or an explicit set_<f>. */
bool xe_field_settable(const xn_field *f);
/* Whether a map/set field takes add_to_/remove_from_ (add_/remove_). */
bool xe_field_keys_settable(const xn_field *f);

/* Render one value of type t as xe prints it (caller frees): refs as the
 * target's uuid or "<not in database>", sets "a; b", maps "k: v; k2: v2",
 * power states lowercase. */
char *xe_render(const xn_type *t, json_t *v, const xe_lookup *lk);

/* Record layout of cli_printer.ml: width 4 + longest key (suffix
 * included), first key left-aligned, the rest right-aligned, ": value",
 * then a blank line. keys: which rows (NULL: every visible row), always
 * in record order. Caller frees. */
char *xe_format_record(xe_rec *r, char *const *keys, bool suffixes, const xe_lookup *lk);

/* A filter from the command line: `key=value`, `map:key=value`,
 * `set:contains=value`; key "vm" (the spec's own name) matches the
 * uuid or the name-label. */
typedef struct xe_filter {
	char *key, *mapkey, *value;
	bool contains;
} xe_filter;

/* Parse "k=v"-style filters from params (skipping std params and those
 * named in `skip`, space-separated). Unknown fields fail. Returns a
 * NULL-key-terminated array (xe_filters_free) or NULL. */
xe_filter *xe_filters_from_params(const xe_class_spec *spec, const xe_param *p, size_t n,
				  const char *skip, xn_error **err);
/* Filters from "k=v k=v" text (a spec's fixed filters). */
xe_filter *xe_filters_parse(const char *text);
void xe_filters_free(xe_filter *f);
bool xe_rec_matches(xe_rec *r, const xe_filter *f, const xe_lookup *lk);
bool xe_rec_matches_all(xe_rec *r, const xe_filter *f, const xe_lookup *lk);

/* Selected columns: "params=a,b" or "all" (NULL: the spec's defaults).
 * Returns a strv (caller frees) or NULL for "all". */
char **xe_columns(const xe_class_spec *spec, const char *params);

/* ---- JSON-RPC client (rpc.c) ---------------------------------------- */

typedef struct xe_target {
	const char *socket; /* unix socket path; NULL for TCP */
	const char *host;
	int port;
	bool tls;
	const char *username, *password;
} xe_target;

typedef struct xe_conn xe_conn;

/* A connection to the target (no I/O yet); copies t. */
xe_conn *xe_conn_new(const xe_target *t);
/* Log in (session.login_with_password). Returns 0 or -1. */
int xe_conn_login(xe_conn *c, xn_error **err);
/* Log out if logged in, and free. NULL is fine. */
void xe_conn_free(xe_conn *c);
const char *xe_conn_session(const xe_conn *c);
const xe_target *xe_conn_target(const xe_conn *c);
/* "xeniad at /run/xenia/xapi.sock" or "host:443", for messages. */
const char *xe_conn_where(const xe_conn *c);
/* Call method with the session first, then params (a JSON array, stolen;
 * NULL for none). Returns the result (new reference) or NULL with the
 * XenAPI error (code and params) or a transport error in *err. */
json_t *xe_call(xe_conn *c, const char *method, json_t *params, xn_error **err);
/* GET path (with its query) on the daemon with the session appended as
 * session_id: the body (caller frees, *len its size) of a 200 answer,
 * else NULL with an error. */
char *xe_http_get(xe_conn *c, const char *path, size_t *len, xn_error **err);
/* The same for a void result: 0 or -1. */
int xe_call_void(xe_conn *c, const char *method, json_t *params, xn_error **err);

/* The JSON-RPC 2.0 request body (caller frees). */
char *xe_rpc_request(const char *method, json_t *params, long id);
/* Parse a JSON-RPC reply (v1 or v2): the result (new reference) or NULL
 * with the XenAPI error in *err. */
json_t *xe_rpc_reply(const char *body, size_t len, xn_error **err);

/* ---- record cache (cache.c) ----------------------------------------- */

typedef struct xe_cache xe_cache;
xe_cache *xe_cache_new(xe_conn *conn);
void xe_cache_free(xe_cache *c);
/* A lookup that reads records through the cache. */
xe_lookup xe_cache_lookup(xe_cache *c);
/* Every record of cls (ref -> record, borrowed), fetched once. */
json_t *xe_cache_all(xe_cache *c, const char *cls, xn_error **err);
/* Forget what was fetched (after a command changed objects). */
void xe_cache_reset(xe_cache *c);
/* "uuid (name-label)" for a ref of any of the common classes, or NULL. */
char *xe_cache_describe_ref(xe_cache *c, const char *ref);

/* ---- commands (commands.c) ------------------------------------------ */

typedef struct xe_ctx xe_ctx;
typedef struct xe_cmd xe_cmd;
typedef int (*xe_handler)(xe_ctx *ctx, xn_error **err);

enum {
	XE_CMD_NO_CONN = 1 << 0,   /* runs without a daemon (help) */
	XE_CMD_FILTERS = 1 << 1,   /* any field is accepted as a filter */
	XE_CMD_ANY = 1 << 2,       /* any key=value (param-set, param-add) */
	XE_CMD_STANDARD = 1 << 3,  /* shown in the short help */
};

struct xe_cmd {
	const char *name;
	xe_handler fn;
	const char *reqd;          /* space-separated */
	const char *optn;          /* space-separated */
	unsigned flags;
	const char *help;
	const void *data;          /* handler data: a class spec, an op */
};

struct xe_ctx {
	const xe_args *args;
	const xe_cmd *cmd;
	xe_conn *conn;
	xe_cache *cache;
	xe_lookup lk;
	FILE *out;
};

/* The command named name (hand-written or generated), or NULL. */
const xe_cmd *xe_cmd_find(const char *name);
/* Every command, hand-written first; *n gets the count. */
const xe_cmd *xe_cmds(size_t *n);
/* Whether key is one of cmd's declared parameters. */
bool xe_cmd_has_param(const xe_cmd *cmd, const char *key);
/* Check required parameters and reject unknown ones. Returns 0 or -1. */
int xe_cmd_check_params(const xe_cmd *cmd, const xe_args *a, xn_error **err);

/* Generated per-class commands (cmd_param.c); data is the class spec. */
int xe_cmd_list(xe_ctx *ctx, xn_error **err);
int xe_cmd_param_list(xe_ctx *ctx, xn_error **err);
int xe_cmd_param_get(xe_ctx *ctx, xn_error **err);
int xe_cmd_param_set(xe_ctx *ctx, xn_error **err);
int xe_cmd_param_add(xe_ctx *ctx, xn_error **err);
int xe_cmd_param_remove(xe_ctx *ctx, xn_error **err);
int xe_cmd_param_clear(xe_ctx *ctx, xn_error **err);

/* Fetch every record of spec's class passing its fixed filters and the
 * given ones (may be NULL). Returns a NULL-terminated array
 * (xe_recs_free) or NULL. */
xe_rec **xe_fetch(xe_ctx *ctx, const xe_class_spec *spec, const xe_filter *f, xn_error **err);
void xe_recs_free(xe_rec **recs);
/* The records chosen by the command's selectors (any field filter,
 * `<cls>=` name-label or uuid) among those passing spec's fixed filters
 * and `extra` ("k=v k=v", may be NULL); several need --multiple, none
 * fails. */
xe_rec **xe_select(xe_ctx *ctx, const xe_class_spec *spec, const char *extra, xn_error **err);
/* One record of spec's class by uuid (get_by_uuid + get_record). */
xe_rec *xe_get_by_uuid(xe_ctx *ctx, const xe_class_spec *spec, const char *uuid, xn_error **err);
/* Ref of the object of class cls with this uuid (caller frees). */
char *xe_ref_by_uuid(xe_ctx *ctx, const char *cls, const char *uuid, xn_error **err);
/* Convert a command-line string to the JSON a field of type t takes
 * (units for memory/size ints, uuids to refs). NULL on error. */
json_t *xe_value_from_cli(xe_ctx *ctx, const xn_field *f, const xn_type *t, const char *s,
			  xn_error **err);

/* Hand-written commands. */
int xe_cmd_vm_install(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_lifecycle(xe_ctx *ctx, xn_error **err);   /* data: the op */
int xe_cmd_vm_uninstall(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_console(xe_ctx *ctx, xn_error **err);
/* Disks (cmd_disk.c). */
/* Print the uuid of a new object of class cls named by ref (taken);
 * -1 if ref is NULL (the call failed) or the look-up fails. */
int xe_print_new_uuid(xe_ctx *ctx, const char *cls, json_t *ref, xn_error **err);
/* <cls>.destroy of the object uuid= names. */
int xe_destroy_by_uuid(xe_ctx *ctx, const char *cls, xn_error **err);
int xe_cmd_network_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_network_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_vif_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_vif_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_vif_plug(xe_ctx *ctx, xn_error **err);
int xe_cmd_vif_unplug(xe_ctx *ctx, xn_error **err);
int xe_cmd_pif_scan(xe_ctx *ctx, xn_error **err);
int xe_cmd_pif_plug(xe_ctx *ctx, xn_error **err);
int xe_cmd_pif_unplug(xe_ctx *ctx, xn_error **err);
int xe_cmd_pif_forget(xe_ctx *ctx, xn_error **err);
int xe_cmd_pif_reconfigure_ip(xe_ctx *ctx, xn_error **err);
int xe_cmd_vlan_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_vlan_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_bond_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_bond_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_vdi_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_vdi_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_vbd_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_vbd_destroy(xe_ctx *ctx, xn_error **err);
int xe_cmd_vdi_resize(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_clone(xe_ctx *ctx, xn_error **err);
/* Disks and CD drives of VMs (cmd_vbd.c). */
int xe_cmd_vbd_plug(xe_ctx *ctx, xn_error **err);
int xe_cmd_vbd_unplug(xe_ctx *ctx, xn_error **err);
int xe_cmd_vbd_insert(xe_ctx *ctx, xn_error **err);
int xe_cmd_vbd_eject(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_disk_add(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_disk_remove(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_disk_list(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_cd_add(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_cd_insert(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_cd_eject(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_cd_remove(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_cd_list(xe_ctx *ctx, xn_error **err);
/* Memory limits and balloon targets of VMs (cmd_memory.c). */
int xe_cmd_vm_memory(xe_ctx *ctx, xn_error **err);
/* Storage and snapshots (cmd_storage.c); data: the XenAPI method. */
int xe_cmd_sr_create(xe_ctx *ctx, xn_error **err);
int xe_cmd_sr_op(xe_ctx *ctx, xn_error **err);
int xe_cmd_pbd_op(xe_ctx *ctx, xn_error **err);
int xe_cmd_vdi_fork(xe_ctx *ctx, xn_error **err);
int xe_cmd_vdi_copy(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_copy_op(xe_ctx *ctx, xn_error **err);
int xe_cmd_snapshot_revert(xe_ctx *ctx, xn_error **err);
int xe_cmd_snapshot_destroy(xe_ctx *ctx, xn_error **err);
/* Disk images in and out (cmd_transfer.c). */
int xe_cmd_vdi_import(xe_ctx *ctx, xn_error **err);
int xe_cmd_vdi_export(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_export(xe_ctx *ctx, xn_error **err);
int xe_cmd_vm_import(xe_ctx *ctx, xn_error **err);
int xe_cmd_p2v(xe_ctx *ctx, xn_error **err);
/* Local users (cmd_user.c). */
int xe_cmd_user_add(xe_ctx *ctx, xn_error **err);
int xe_cmd_user_remove(xe_ctx *ctx, xn_error **err);
int xe_cmd_user_list(xe_ctx *ctx, xn_error **err);
int xe_cmd_user_password_change(xe_ctx *ctx, xn_error **err);
int xe_cmd_help(xe_ctx *ctx, xn_error **err);
/* Data sources (cmd_datasource.c); data: "VM" or "host". */
int xe_cmd_ds_list(xe_ctx *ctx, xn_error **err);
int xe_cmd_ds_query(xe_ctx *ctx, xn_error **err);
int xe_cmd_ds_record(xe_ctx *ctx, xn_error **err);
int xe_cmd_ds_forget(xe_ctx *ctx, xn_error **err);
/* xe top (cmd_top.c). */
int xe_cmd_top(xe_ctx *ctx, xn_error **err);

/* Every attr="..." attribute (sr, size) of a template's provisioning
 * XML (other_config:disks) set to value, as xe's rewrite_provisioning_xml
 * does for sr. Caller frees. */
char *xe_rewrite_provision(const char *xml, const char *attr, const char *value);

/* Print usage and the list of commands (all: also non-standard ones). */
void xe_print_usage(FILE *out, bool all);

/* ---- console handshake (console_proto.c) ---------------------------- */

/* Path and query of a console location ("https://h/console?ref=X" or
 * "/console?ref=X"), caller frees; NULL with an error if malformed. */
char *xe_console_path(const char *location, xn_error **err);
/* "CONNECT <path>&session_id=S&scrollback=N HTTP/1.0\r\n\r\n". */
char *xe_console_request(const char *path, const char *session, long scrollback);

/* The daemon's answer to CONNECT, parsed with http_parser. */
typedef struct xe_http_resp xe_http_resp;
xe_http_resp *xe_http_resp_new(void);
void xe_http_resp_free(xe_http_resp *r);
/* Feed bytes (n == 0: the peer closed). Returns how many were part of
 * the HTTP response; after a 200 the rest is console data. -1 if the
 * response is malformed. */
ssize_t xe_http_resp_feed(xe_http_resp *r, const char *data, size_t n);
/* 0 until the status line and headers are complete. */
int xe_http_resp_status(const xe_http_resp *r);
/* The response is over: a 200's headers, or a failure's whole body. */
bool xe_http_resp_done(const xe_http_resp *r);
const char *xe_http_resp_body(const xe_http_resp *r);

#endif
