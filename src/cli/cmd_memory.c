/* cmd_memory.c: the memory commands of `xe` on VM selectors, as in
 * xapi's CLI: vm-memory-target-set (VM.set_memory_dynamic_range with
 * min = max = target: a running VM's balloon goes there at once),
 * vm-memory-dynamic-range-set, vm-memory-static-range-set,
 * vm-memory-limits-set and vm-memory-set. Sizes take units (512MiB). */
#include <string.h>

#include "cli/cli.h"

/* Each command: the VM message and which parameters give its integer
 * arguments, in order. */
static const struct mem_cmd {
	const char *cmd, *msg;
	const char *args[4];
} mem_cmds[] = {
	{"vm-memory-target-set", "set_memory_dynamic_range", {"target", "target"}},
	{"vm-memory-dynamic-range-set", "set_memory_dynamic_range", {"min", "max"}},
	{"vm-memory-static-range-set", "set_memory_static_range", {"min", "max"}},
	{"vm-memory-limits-set", "set_memory_limits",
	 {"static-min", "static-max", "dynamic-min", "dynamic-max"}},
	{"vm-memory-set", "set_memory", {"memory"}},
};

static const struct mem_cmd *mem_cmd_of(const char *name)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(mem_cmds); i++)
		if (strcmp(mem_cmds[i].cmd, name) == 0)
			return &mem_cmds[i];
	return NULL;
}

int xe_cmd_vm_memory(xe_ctx *ctx, xn_error **err)
{
	const struct mem_cmd *m = mem_cmd_of(ctx->cmd->name);
	if (!m)
		return xe_fail(err, "Unknown command: %s", ctx->cmd->name);
	json_t *ints = json_array();
	for (size_t i = 0; i < XN_ARRAY_LEN(m->args) && m->args[i]; i++) {
		int64_t v;
		if (xe_parse_size(xe_arg(ctx->args, m->args[i]), &v, err) < 0) {
			json_decref(ints);
			return -1;
		}
		json_array_append_new(ints, json_integer(v));
	}
	xe_rec **vms = xe_select(ctx, xe_class_spec_find("vm"), "is-control-domain=false", err);
	if (!vms) {
		json_decref(ints);
		return -1;
	}
	XN_AUTOFREE char *method = xn_asprintf("VM.%s", m->msg);
	int rc = 0;
	for (size_t i = 0; vms[i] && rc == 0; i++) {
		json_t *params = json_pack("[s]", vms[i]->ref);
		json_array_extend(params, ints);
		rc = xe_call_void(ctx->conn, method, params, err);
	}
	xe_recs_free(vms);
	json_decref(ints);
	return rc;
}
