/* Unit tests of the allowed-operations rules (vm_ops.c): the error codes
 * and parameters xapi gives, and allowed_operations per power state. */
#include "check.h"
#include "vm/vm.h"

static json_t *vm(const char *power)
{
	xn_model_init();
	json_t *r = xn_record_new(xn_model_class("VM"));
	json_object_set_new(r, "power_state", json_string(power));
	return r;
}

static bool has(json_t *set, const char *op)
{
	size_t i;
	json_t *v;
	json_array_foreach(set, i, v) if (strcmp(json_string_value(v), op) == 0) return true;
	return false;
}

TEST(test_bad_power_state_params)
{
	json_t *r = vm("Halted");
	xn_error *err = NULL;
	CHECK(xn_vm_check_op("OpaqueRef:x", r, "pause", &err) < 0);
	CHECK_STR(err->code, "VM_BAD_POWER_STATE");
	CHECK_STR(err->params[0], "OpaqueRef:x");
	CHECK_STR(err->params[1], "running");
	CHECK_STR(err->params[2], "halted");
	xn_errorp_free(&err);
	CHECK(xn_vm_check_op("OpaqueRef:x", r, "hard_shutdown", &err) < 0);
	CHECK_STR(err->params[1], "paused, suspended, running");
	xn_errorp_free(&err);
	CHECK(xn_vm_check_op("OpaqueRef:x", r, "start", &err) == 0);
	json_decref(r);
}

TEST(test_template_and_in_progress)
{
	json_t *r = vm("Halted");
	json_object_set_new(r, "is_a_template", json_true());
	xn_error *err = NULL;
	CHECK(xn_vm_check_op("OpaqueRef:t", r, "start", &err) < 0);
	CHECK_STR(err->code, "VM_IS_TEMPLATE");
	CHECK_STR(err->params[1], "start");
	xn_errorp_free(&err);
	CHECK(xn_vm_check_op("OpaqueRef:t", r, "clone", &err) == 0);
	json_object_set_new(r, "is_a_template", json_false());
	json_object_set_new(json_object_get(r, "current_operations"), "OpaqueRef:task",
			    json_string("start"));
	CHECK(xn_vm_check_op("OpaqueRef:t", r, "start", &err) < 0);
	CHECK_STR(err->code, "OTHER_OPERATION_IN_PROGRESS");
	CHECK_STR(err->params[0], "VM");
	CHECK_STR(err->params[2], "start");
	CHECK_STR(err->params[3], "OpaqueRef:task");
	xn_errorp_free(&err);
	json_t *allowed = xn_vm_allowed_ops(r);
	CHECK(json_array_size(allowed) == 0);
	json_decref(allowed);
	json_decref(r);
}

TEST(test_allowed_by_state)
{
	json_t *r = vm("Running");
	json_t *a = xn_vm_allowed_ops(r);
	CHECK(has(a, "clean_shutdown") && has(a, "suspend") && has(a, "pause"));
	CHECK(!has(a, "start") && !has(a, "resume") && !has(a, "destroy"));
	json_decref(a);
	json_decref(r);
	r = vm("Suspended");
	a = xn_vm_allowed_ops(r);
	CHECK(has(a, "resume") && has(a, "hard_shutdown") && has(a, "destroy"));
	CHECK(!has(a, "start") && !has(a, "pause"));
	json_decref(a);
	json_object_set_new(json_object_get(r, "blocked_operations"), "resume",
			    json_string("ask first"));
	xn_error *err = NULL;
	CHECK(xn_vm_check_op("OpaqueRef:b", r, "resume", &err) < 0);
	CHECK_STR(err->code, "OPERATION_BLOCKED");
	CHECK_STR(err->params[1], "ask first");
	xn_errorp_free(&err);
	json_decref(r);
}

int main(void)
{
	RUN(test_bad_power_state_params);
	RUN(test_template_and_in_progress);
	RUN(test_allowed_by_state);
	CHECK_EXIT();
}
