/* Unit tests of the object store: commit, relations, persistence across
 * reopen, failed commits leaving memory unchanged. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "db/db.h"
#include "util/fs.h"
#include "util/uuid.h"

/* A backend that wraps SQLite and fails commits on demand. */
static int fail_commits;
static int failing_commit(void *be, const xn_db_write *w, size_t n, uint64_t gen, xn_error **err)
{
	if (fail_commits)
		return xn_fail_internal(err, "injected failure");
	return xn_db_sqlite_ops.commit(be, w, n, gen, err);
}
static xn_db_backend_ops failing_ops;

static char dir[] = "/tmp/xn-test-db-XXXXXX";

static xn_db *open_db(void)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/xapi.db", dir);
	XN_AUTOERR xn_error *err = NULL;
	void *be = xn_db_sqlite_open(path, &err);
	CHECK(be != NULL);
	failing_ops = xn_db_sqlite_ops;
	failing_ops.commit = failing_commit;
	xn_db *db = xn_db_open(&failing_ops, be, &err);
	CHECK(db != NULL);
	return db;
}

TEST(test_model_tables)
{
	xn_model_init();
	const xn_class *vm = xn_model_class("VM");
	CHECK(vm != NULL);
	CHECK(xn_model_class_ci("vm") == vm);
	const xn_field *f = xn_class_field(vm, "current_operations");
	CHECK(f && f->type->kind == XN_T_MAP && f->type->val->kind == XN_T_ENUM);
	CHECK_STR(xn_class_field(vm, "power_state")->cli_name, "power-state");
	CHECK_STR(xn_class_field(xn_model_class("VBD"), "VM")->cli_name, "vm-uuid");
	CHECK_STR(xn_class_field(vm, "VBDs")->cli_name, "vbd-uuids");
	CHECK_STR(xn_class_field(vm, "domid")->cli_name, "dom-id");
	const xn_message *start = xn_class_message(vm, "start");
	CHECK(start && start->nparams == 3 && start->role == XN_ROLE_VM_OPERATOR);
	const xn_message *login = xn_class_message(xn_model_class("session"), "login_with_password");
	CHECK(login && login->nparams == 4 && login->nrequired == 2);
	CHECK(login->flags & XN_MSG_NO_SESSION);
	json_t *rec = xn_record_new(vm);
	CHECK_STR(json_string_value(json_object_get(rec, "power_state")), "Halted");
	CHECK(json_is_array(json_object_get(rec, "VBDs")));
	json_decref(rec);
}

TEST(test_value_check)
{
	XN_AUTOERR xn_error *err = NULL;
	json_t *s = json_string("42");
	json_t *v = xn_value_check(xn_type_parse("int"), s, "x", &err);
	CHECK(v && json_integer_value(v) == 42);
	json_decref(v);
	json_decref(s);
	json_t *bad = json_string("4x2");
	CHECK(xn_value_check(xn_type_parse("int"), bad, "x", &err) == NULL);
	CHECK(err && strcmp(err->code, "FIELD_TYPE_ERROR") == 0);
	json_decref(bad);
	xn_errorp_free(&err);
	json_t *e = json_string("running");
	v = xn_value_check(xn_type_parse("enum vm_power_state"), e, "power_state", &err);
	CHECK_STR(json_string_value(v), "Running");
	json_decref(v);
	json_decref(e);
	e = json_string("flying");
	CHECK(!xn_value_check(xn_type_parse("enum vm_power_state"), e, "power_state", &err));
	CHECK(err && strcmp(err->code, "INVALID_VALUE") == 0);
	json_decref(e);
}

TEST(test_commit_and_relations)
{
	xn_db *db = open_db();
	XN_AUTOERR xn_error *err = NULL;
	xn_changes *cs = xn_changes_new(db);
	json_t *vmrec = json_pack("{s:s}", "name_label", "web1");
	XN_AUTOFREE char *vm = xn_strdup(xn_changes_add(cs, xn_model_class("VM"), NULL, vmrec));
	json_t *vbdrec = json_pack("{s:s,s:s}", "VM", vm, "userdevice", "0");
	XN_AUTOFREE char *vbd = xn_strdup(xn_changes_add(cs, xn_model_class("VBD"), NULL, vbdrec));
	CHECK(xn_db_commit(db, cs, &err) == 0);
	json_t *vbds = xn_db_field(db, vm, "VBDs");
	CHECK(json_array_size(vbds) == 1);
	CHECK_STR(json_string_value(json_array_get(vbds, 0)), vbd);
	const char *uuid = xn_db_str(db, vm, "uuid");
	CHECK(xn_uuid_valid(uuid));
	CHECK_STR(xn_db_ref_by_uuid(db, xn_model_class("VM"), uuid), vm);
	uint64_t gen = xn_db_generation(db);

	/* Deleting the VBD drops it from the VM's set. */
	cs = xn_changes_new(db);
	xn_changes_delete(cs, vbd);
	CHECK(xn_db_commit(db, cs, &err) == 0);
	CHECK(json_array_size(xn_db_field(db, vm, "VBDs")) == 0);
	CHECK(xn_db_get(db, vbd) == NULL);
	CHECK(xn_db_generation(db) == gen + 1);
	xn_db_close(db);

	/* Everything survives a reopen. */
	db = open_db();
	CHECK_STR(xn_db_str(db, vm, "name_label"), "web1");
	CHECK(xn_db_generation(db) == gen + 1);
	CHECK(xn_db_get(db, vbd) == NULL);
	xn_db_close(db);
}

TEST(test_failed_commit_changes_nothing)
{
	xn_db *db = open_db();
	XN_AUTOERR xn_error *err = NULL;
	const char *some_vm = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(db, xn_model_class("VM")), k, v) some_vm = k;
	CHECK(some_vm != NULL);
	XN_AUTOFREE char *vm = xn_strdup(some_vm);
	uint64_t gen = xn_db_generation(db);
	fail_commits = 1;
	CHECK(xn_db_set(db, vm, "name_label", json_string("changed"), &err) < 0);
	fail_commits = 0;
	CHECK_STR(xn_db_str(db, vm, "name_label"), "web1");
	CHECK(xn_db_generation(db) == gen);
	xn_db_close(db);
	db = open_db();
	CHECK_STR(xn_db_str(db, vm, "name_label"), "web1");
	xn_db_close(db);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 2;
	RUN(test_model_tables);
	RUN(test_value_check);
	RUN(test_commit_and_relations);
	RUN(test_failed_commit_changes_nothing);
	xn_rm_rf(dir, NULL);
	CHECK_EXIT();
}
