/* vm_ops.c: which VM operations are allowed in which state (vm.h),
 * following xapi's xapi_vm_lifecycle.ml. Pure: records in, answers out. */
#include "vm/vm.h"

#include <string.h>

#include "util/uuid.h"

static const struct {
	const char *op, *states;
} op_states[] = {
	{"start", "halted"},
	{"start_on", "halted"},
	{"provision", "halted"},
	{"make_into_template", "halted"},
	{"changing_VCPUs", "halted"},
	{"changing_static_range", "halted"},
	{"changing_memory_limits", "halted"},
	{"unpause", "paused"},
	{"resume", "suspended"},
	{"resume_on", "suspended"},
	{"clean_shutdown", "running"},
	{"clean_reboot", "running"},
	{"pause", "running"},
	{"suspend", "running"},
	{"pool_migrate", "running"},
	{"send_sysrq", "running"},
	{"send_trigger", "running"},
	{"changing_memory_live", "running"},
	{"changing_VCPUs_live", "running"},
	{"changing_dynamic_range", "halted, running"},
	{"clone", "halted"},
	{"copy", "halted"},
	{"destroy", "halted, suspended"},
	{"export", "halted, suspended"},
	{"hard_reboot", "paused, running"},
	{"hard_shutdown", "paused, suspended, running"},
	{"shutdown", "paused, suspended, running"},
	{"checkpoint", "paused, suspended, running"},
	{"snapshot", "halted, paused, running, suspended"},
	{"power_state_reset", "halted, paused, running, suspended"},
};

/* Operations a template still allows (xapi: templates can be cloned,
 * copied, exported, destroyed, provisioned). */
static const char *template_ops[] = {"clone", "copy", "export", "destroy", "provision",
				     "snapshot", "changing_VCPUs", "changing_static_range",
				     "changing_memory_limits", "changing_dynamic_range", NULL};

const char *xn_vm_op_states(const char *op)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(op_states); i++)
		if (strcmp(op_states[i].op, op) == 0)
			return op_states[i].states;
	return NULL;
}

static bool in_states(const char *states, const char *lower)
{
	size_t n = strlen(lower);
	for (const char *p = states; (p = strstr(p, lower)); p += n)
		if ((p == states || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static char *lowercase(const char *s)
{
	char *l = xn_strdup(s);
	for (char *p = l; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return l;
}

static bool template_allows(const char *op)
{
	for (size_t i = 0; template_ops[i]; i++)
		if (strcmp(template_ops[i], op) == 0)
			return true;
	return false;
}

int xn_vm_check_op(const char *ref, json_t *vm, const char *op, xn_error **err)
{
	if (json_is_true(json_object_get(vm, "is_control_domain")))
		return xn_fail(err, "OPERATION_NOT_ALLOWED",
			       "the control domain cannot be managed this way", NULL);
	if (json_is_true(json_object_get(vm, "is_a_template")) && !template_allows(op))
		return xn_fail(err, "VM_IS_TEMPLATE", ref, op, NULL);
	const char *reason = json_string_value(
		json_object_get(json_object_get(vm, "blocked_operations"), op));
	if (reason)
		return xn_fail(err, "OPERATION_BLOCKED", ref, reason, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(vm, "current_operations"), k, v)
		return xn_fail(err, "OTHER_OPERATION_IN_PROGRESS", "VM", ref,
			       json_string_value(v), k, NULL);
	const char *states = xn_vm_op_states(op);
	XN_AUTOFREE char *actual = lowercase(json_string_value(json_object_get(vm, "power_state")));
	if (states && !in_states(states, actual))
		return xn_fail(err, "VM_BAD_POWER_STATE", ref, states, actual, NULL);
	return 0;
}

json_t *xn_vm_allowed_ops(json_t *vm)
{
	json_t *set = json_array();
	if (json_object_size(json_object_get(vm, "current_operations")) > 0 ||
	    json_is_true(json_object_get(vm, "is_control_domain")))
		return set;
	for (size_t i = 0; i < XN_ARRAY_LEN(op_states); i++) {
		if (xn_vm_check_op("", vm, op_states[i].op, NULL) == 0)
			json_array_append_new(set, json_string(op_states[i].op));
	}
	return set;
}

int xn_vm_device_free(xn_host *h, const char *vm, const char *set, const char *key,
		      const char *dev, long max, const char *field, xn_error **err)
{
	char *end = NULL;
	long n = dev && dev[0] != '-' && dev[0] != '+' ? strtol(dev, &end, 10) : -1;
	if (!dev || !*dev || *end || n < 0 || n > max)
		return xn_fail(err, "INVALID_VALUE", field, dev ? dev : "", NULL);
	if (xn_db_member_where(h->db, vm, set, key, dev))
		return xn_fail(err, "DEVICE_ALREADY_EXISTS", dev, NULL);
	return 0;
}
