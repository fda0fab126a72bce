/* cmd_vm.c: the hand-written VM commands of `xe` (xenapi.md §4.4):
 * vm-install (clone a template, point its provisioning at an SR and a
 * disk size,
 * provision, turn the clone into a VM), the lifecycle commands on VM
 * selectors (start, shutdown, reboot, suspend, resume, pause, unpause),
 * vm-uninstall (VM plus the disks only it uses) and vm-destroy.
 * Selection follows xe: any field filters, `vm=` is a name-label or a
 * uuid, several matches need --multiple, and templates, snapshots and
 * the control domain are never selected. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/uuid.h"

#define SELECTABLE "is-control-domain=false"

static json_t *vm_call(xe_ctx *ctx, const char *msg, json_t *params, xn_error **err)
{
	XN_AUTOFREE char *method = xn_asprintf("VM.%s", msg);
	return xe_call(ctx->conn, method, params, err);
}

static int vm_call_void(xe_ctx *ctx, const char *msg, json_t *params, xn_error **err)
{
	json_t *r = vm_call(ctx, msg, params, err);
	json_decref(r);
	return r ? 0 : -1;
}

/* ---- vm-install ------------------------------------------------------- */

/* The XML is xapi's fixed one-element-per-disk form and only attribute
 * values change, so this stays a substitution, not an XML parser. */
char *xe_rewrite_provision(const char *xml, const char *attr, const char *value)
{
	XN_AUTOFREE char *key = xn_asprintf("%s=", attr);
	size_t klen = strlen(key);
	xn_buf b = {0};
	const char *p = xml;
	for (;;) {
		const char *hit = strstr(p, key);
		while (hit && hit > xml && !strchr(" \t\n", hit[-1]))
			hit = strstr(hit + klen, key);
		if (!hit || (hit[klen] != '"' && hit[klen] != '\''))
			break;
		const char *end = strchr(hit + klen + 1, hit[klen]);
		if (!end)
			break;
		xn_buf_append(&b, p, (size_t)(hit - p) + klen + 1);
		xn_buf_puts(&b, value);
		p = end;
	}
	xn_buf_puts(&b, p);
	return xn_buf_steal(&b);
}

static bool is_template(json_t *rec)
{
	return json_is_true(json_object_get(rec, "is_a_template")) &&
	       !json_is_true(json_object_get(rec, "is_a_snapshot"));
}

/* xe's template matching: a uuid first, then an exact name-label. */
static char *find_template(xe_ctx *ctx, xn_error **err)
{
	const xe_args *a = ctx->args;
	const char *want = xe_arg(a, "template-uuid");
	if (!want)
		want = xe_arg(a, "template");
	if (!want)
		want = xe_arg(a, "template-name-label");
	if (!want) {
		xe_fail(err, "Required parameter not found: template");
		return NULL;
	}
	json_t *all = xe_cache_all(ctx->cache, "VM", err);
	if (!all)
		return NULL;
	const char *ref, *by_name = NULL;
	json_t *rec;
	size_t nnames = 0;
	json_object_foreach(all, ref, rec) {
		if (!is_template(rec))
			continue;
		if (xn_streq(json_string_value(json_object_get(rec, "uuid")), want))
			return xn_strdup(ref);
		if (xn_streq(json_string_value(json_object_get(rec, "name_label")), want)) {
			by_name = ref;
			nnames++;
		}
	}
	if (nnames == 1)
		return xn_strdup(by_name);
	if (nnames > 1)
		xe_fail(err, "Error: several templates are named '%s'; use template-uuid=", want);
	else
		xe_fail(err, "Error: no template '%s' (give a template's name-label or uuid)", want);
	return NULL;
}

/* The SR to provision on: sr-uuid=, else the pool's default SR, else
 * NULL (the template's own provisioning stands). */
static char *install_sr_uuid(xe_ctx *ctx, xn_error **err)
{
	const char *sr = xe_arg(ctx->args, "sr-uuid");
	if (sr) {
		XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "SR", sr, err);
		return ref ? xn_strdup(sr) : NULL;
	}
	XN_AUTOERR xn_error *ignored = NULL;
	json_t *pools = xe_cache_all(ctx->cache, "pool", &ignored);
	const char *ref;
	json_t *pool;
	json_object_foreach(pools, ref, pool) {
		const char *dflt = json_string_value(json_object_get(pool, "default_SR"));
		json_t *srrec = dflt ? ctx->lk.record(ctx->lk.ctx, "SR", dflt) : NULL;
		const char *uuid = json_string_value(json_object_get(srrec, "uuid"));
		if (uuid)
			return xn_strdup(uuid);
	}
	return xn_strdup("");
}

/* The new VM's provisioning: its disks on sr_uuid ("": the template's
 * choice) and, with disk-size=, of that size. */
static int rewrite_disks(xe_ctx *ctx, const char *vm, const char *sr_uuid, xn_error **err)
{
	const char *size = xe_arg(ctx->args, "disk-size");
	int64_t bytes = 0;
	if (size && xe_parse_size(size, &bytes, err) < 0)
		return -1;
	json_t *oc = vm_call(ctx, "get_other_config", json_pack("[s]", vm), err);
	if (!oc)
		return -1;
	const char *disks = json_string_value(json_object_get(oc, "disks"));
	int rc = 0;
	if (disks && (*sr_uuid || size)) {
		XN_AUTOFREE char *with_sr = *sr_uuid ? xe_rewrite_provision(disks, "sr", sr_uuid)
						     : xn_strdup(disks);
		XN_AUTOFREE char *n = xn_asprintf("%lld", (long long)bytes);
		XN_AUTOFREE char *xml = size ? xe_rewrite_provision(with_sr, "size", n)
					     : xn_strdup(with_sr);
		if (strcmp(xml, disks) != 0) {
			rc = vm_call_void(ctx, "remove_from_other_config", json_pack("[ss]", vm, "disks"), err);
			if (rc == 0)
				rc = vm_call_void(ctx, "add_to_other_config",
						  json_pack("[sss]", vm, "disks", xml), err);
		}
	}
	json_decref(oc);
	return rc;
}

static int finish_install(xe_ctx *ctx, const char *vm, const char *sr_uuid, xn_error **err)
{
	const char *desc = xe_arg(ctx->args, "new-name-description");
	if (desc && vm_call_void(ctx, "set_name_description", json_pack("[ss]", vm, desc), err) < 0)
		return -1;
	if (rewrite_disks(ctx, vm, sr_uuid, err) < 0 ||
	    vm_call_void(ctx, "provision", json_pack("[s]", vm), err) < 0 ||
	    vm_call_void(ctx, "set_is_a_template", json_pack("[sb]", vm, 0), err) < 0)
		return -1;
	json_t *uuid = vm_call(ctx, "get_uuid", json_pack("[s]", vm), err);
	if (!uuid)
		return -1;
	fprintf(ctx->out, "%s\n", json_string_value(uuid) ? json_string_value(uuid) : "");
	json_decref(uuid);
	return 0;
}

int xe_cmd_vm_install(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *tmpl = find_template(ctx, err);
	if (!tmpl)
		return -1;
	XN_AUTOFREE char *sr_uuid = install_sr_uuid(ctx, err);
	if (!sr_uuid)
		return -1;
	const char *name = xe_arg(ctx->args, "new-name-label");
	json_t *vm = vm_call(ctx, "clone", json_pack("[ss]", tmpl, name), err);
	if (!vm)
		return -1;
	const char *ref = json_string_value(vm);
	int rc = ref ? finish_install(ctx, ref, sr_uuid, err) : xe_fail(err, "VM.clone returned no VM");
	if (rc < 0 && ref) {
		/* Do not leave a half-installed clone behind. */
		XN_AUTOERR xn_error *ignored = NULL;
		vm_call_void(ctx, "destroy", json_pack("[s]", ref), &ignored);
	}
	json_decref(vm);
	return rc;
}

/* ---- lifecycle ------------------------------------------------------- */

static const struct vm_op {
	const char *cmd, *msg, *force_msg;
	bool start_args; /* (vm, start_paused, force) */
} vm_ops[] = {
	{"vm-start", "start", NULL, true},
	{"vm-shutdown", "clean_shutdown", "hard_shutdown", false},
	{"vm-reboot", "clean_reboot", "hard_reboot", false},
	{"vm-suspend", "suspend", NULL, false},
	{"vm-resume", "resume", NULL, true},
	{"vm-pause", "pause", NULL, false},
	{"vm-unpause", "unpause", NULL, false},
};

/* on=<host name-label or uuid> of vm-start. */
static char *find_host(xe_ctx *ctx, const char *want, xn_error **err)
{
	json_t *all = xe_cache_all(ctx->cache, "host", err);
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) {
		if (xn_streq(json_string_value(json_object_get(rec, "uuid")), want) ||
		    xn_streq(json_string_value(json_object_get(rec, "name_label")), want))
			return xn_strdup(ref);
	}
	if (all)
		xe_fail(err, "Error: no host '%s'", want);
	return NULL;
}

static int run_op(xe_ctx *ctx, const struct vm_op *op, const char *vm, const char *host,
		  xn_error **err)
{
	bool force = xe_arg_flag(ctx->args, "force");
	bool paused = xe_arg_flag(ctx->args, "paused");
	if (op->start_args && host)
		return vm_call_void(ctx, strcmp(op->msg, "start") == 0 ? "start_on" : "resume_on",
				    json_pack("[ssbb]", vm, host, paused, force), err);
	if (op->start_args)
		return vm_call_void(ctx, op->msg, json_pack("[sbb]", vm, paused, force), err);
	const char *msg = force && op->force_msg ? op->force_msg : op->msg;
	return vm_call_void(ctx, msg, json_pack("[s]", vm), err);
}

int xe_cmd_vm_lifecycle(xe_ctx *ctx, xn_error **err)
{
	const struct vm_op *op = NULL;
	for (size_t i = 0; i < XN_ARRAY_LEN(vm_ops); i++)
		if (strcmp(vm_ops[i].cmd, ctx->cmd->name) == 0)
			op = &vm_ops[i];
	if (!op)
		return xe_fail(err, "Unknown command: %s", ctx->cmd->name);
	const char *on = xe_arg(ctx->args, "on");
	XN_AUTOFREE char *host = on ? find_host(ctx, on, err) : NULL;
	if (on && !host)
		return -1;
	const char *spec = ctx->cmd->data ? ctx->cmd->data : "vm";
	xe_rec **vms = xe_select(ctx, xe_class_spec_find(spec), SELECTABLE, err);
	if (!vms)
		return -1;
	int rc = 0;
	for (size_t i = 0; vms[i] && rc == 0; i++)
		rc = run_op(ctx, op, vms[i]->ref, host, err);
	xe_recs_free(vms);
	return rc;
}

/* ---- vm-uninstall, vm-destroy -------------------------------------------- */

static json_t *get_record(xe_ctx *ctx, const char *cls, const char *ref, xn_error **err)
{
	XN_AUTOFREE char *method = xn_asprintf("%s.get_record", cls);
	return xe_call(ctx->conn, method, json_pack("[s]", ref), err);
}

/* Whether every VBD of the VDI belongs to vm. */
static bool vdi_only_used_by(xe_ctx *ctx, json_t *vdi, const char *vm)
{
	size_t i;
	json_t *vbd_ref;
	json_array_foreach(json_object_get(vdi, "VBDs"), i, vbd_ref) {
		XN_AUTOERR xn_error *err = NULL;
		json_t *vbd = get_record(ctx, "VBD", json_string_value(vbd_ref), &err);
		bool mine = xn_streq(json_string_value(json_object_get(vbd, "VM")), vm);
		json_decref(vbd);
		if (!mine)
			return false;
	}
	return true;
}

/* The read-write disks only this VM uses. */
static char **disks_to_destroy(xe_ctx *ctx, xe_rec *r, xn_error **err)
{
	char **vdis = xn_strv_new();
	size_t i;
	json_t *vbd_ref;
	json_array_foreach(json_object_get(r->json, "VBDs"), i, vbd_ref) {
		json_t *vbd = get_record(ctx, "VBD", json_string_value(vbd_ref), err);
		if (!vbd) {
			xn_strv_free(vdis);
			return NULL;
		}
		const char *vdi_ref = json_string_value(json_object_get(vbd, "VDI"));
		bool disk = xn_streq(json_string_value(json_object_get(vbd, "type")), "Disk") &&
			    xn_streq(json_string_value(json_object_get(vbd, "mode")), "RW");
		XN_AUTOERR xn_error *ignored = NULL;
		json_t *vdi = disk && !xn_ref_is_null(vdi_ref) ? get_record(ctx, "VDI", vdi_ref, &ignored) : NULL;
		if (vdi && vdi_only_used_by(ctx, vdi, r->ref))
			xn_strv_push(&vdis, vdi_ref);
		json_decref(vdi);
		json_decref(vbd);
	}
	return vdis; /* VM.destroy removes the suspend image itself */
}

static int uninstall_one(xe_ctx *ctx, xe_rec *r, xn_error **err)
{
	/* a checkpoint is "Suspended" but runs nowhere: only its image goes */
	const char *power = json_string_value(json_object_get(r->json, "power_state"));
	bool snapshot = json_is_true(json_object_get(r->json, "is_a_snapshot"));
	if (power && strcasecmp(power, "Halted") != 0 && !snapshot &&
	    vm_call_void(ctx, "hard_shutdown", json_pack("[s]", r->ref), err) < 0)
		return -1;
	XN_AUTOSTRV char **vdis = disks_to_destroy(ctx, r, err);
	if (!vdis || vm_call_void(ctx, "destroy", json_pack("[s]", r->ref), err) < 0)
		return -1;
	for (size_t i = 0; vdis[i]; i++) {
		json_t *res = xe_call(ctx->conn, "VDI.destroy", json_pack("[s]", vdis[i]), err);
		if (!res)
			return -1;
		json_decref(res);
	}
	return 0;
}

/* Interactive confirmation, as xe asks before destroying (only on a
 * terminal and without --force). */
static bool confirmed(xe_ctx *ctx, xe_rec **vms)
{
	if (xe_arg_flag(ctx->args, "force") || !isatty(STDIN_FILENO))
		return true;
	fputs("The following VMs and their disks are about to be destroyed:\n", stderr);
	for (size_t i = 0; vms[i]; i++)
		fprintf(stderr, "VM : %s (%s)\n", json_string_value(json_object_get(vms[i]->json, "uuid")),
			json_string_value(json_object_get(vms[i]->json, "name_label")));
	fputs("Type 'yes' to continue\n", stderr);
	char line[16] = "";
	return fgets(line, sizeof(line), stdin) && strcmp(line, "yes\n") == 0;
}

int xe_cmd_vm_uninstall(xe_ctx *ctx, xn_error **err)
{
	const char *spec = ctx->cmd->data ? ctx->cmd->data : "vm";
	xe_rec **vms = xe_select(ctx, xe_class_spec_find(spec), SELECTABLE, err);
	if (!vms)
		return -1;
	int rc = confirmed(ctx, vms) ? 0 : xe_fail(err, "Aborted");
	for (size_t i = 0; vms[i] && rc == 0; i++)
		rc = uninstall_one(ctx, vms[i], err);
	xe_recs_free(vms);
	return rc;
}

int xe_cmd_vm_destroy(xe_ctx *ctx, xn_error **err)
{
	XN_AUTOFREE char *ref = xe_ref_by_uuid(ctx, "VM", xe_arg(ctx->args, "uuid"), err);
	return ref ? vm_call_void(ctx, "destroy", json_pack("[s]", ref), err) : -1;
}
