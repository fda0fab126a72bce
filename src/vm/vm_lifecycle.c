/* vm_lifecycle.c: the XenAPI VM operations (vm.h): start, shutdown,
 * reboot, suspend, resume, pause, unpause, destroy, and the memory and
 * vCPU setters. Each operation runs under a task that is recorded in the
 * VM's current_operations while it runs, so concurrent operations get
 * OTHER_OPERATION_IN_PROGRESS and allowed_operations stays true. Long
 * operations are state machines whose steps are callbacks, in order,
 * top to bottom. */
#include "vm/vm_runtime.h"
#include "vm/cloud_init.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/vm_guest.h"

struct op {
	xn_call *call;
	xn_host *h;
	char *vm, *task;
	const char *name;
	uv_timer_t *timer;
	char *state_path, *state_uuid;
	bool paused;
	bool own_task;      /* made by op_begin (not an Async. task) */
	uint64_t since;     /* when the operation started waiting */
	bool press_failed;  /* the last press of the power button failed */
};

/* ---- tasks and current operations ------------------------------------ */

static struct op *op_begin(xn_call *c, const char *name)
{
	bool own = false;
	xn_error *err = NULL;
	char *task = xn_vm_op_mark(c, xn_call_arg_str(c, 0), name, &own, &err);
	if (!task) {
		xn_call_fail(c, err);
		return NULL;
	}
	struct op *o = xn_calloc(1, sizeof(*o));
	o->own_task = own;
	o->call = c;
	o->h = c->host;
	o->vm = xn_strdup(xn_call_arg_str(c, 0));
	o->task = task;
	o->name = name;
	return o;
}

/* Finish: clear the operation, settle the task, answer the call. */
static void op_end(struct op *o, xn_error *err, json_t *result)
{
	xn_vm_op_unmark(o->h, o->vm, o->task, o->name, o->own_task, err, result);
	if (o->timer)
		uv_close((uv_handle_t *)o->timer, (uv_close_cb)free);
	if (err)
		xn_call_fail(o->call, err);
	else
		xn_call_return(o->call, result);
	free(o->vm);
	free(o->task);
	free(o->state_path);
	free(o->state_uuid);
	free(o);
}

static void op_fail_code(struct op *o, const char *code, const char *p1, const char *p2)
{
	xn_error *err = NULL;
	xn_fail(&err, code, p1, p2, NULL);
	op_end(o, err, NULL);
}

static void op_timer(struct op *o, uint64_t ms, uv_timer_cb cb)
{
	if (!o->timer) {
		o->timer = xn_calloc(1, sizeof(uv_timer_t));
		uv_timer_init(o->h->loop, o->timer);
		o->timer->data = o;
	}
	uv_timer_start(o->timer, cb, ms, 0);
}

static struct dom *op_dom(struct op *o)
{
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (!d)
		op_fail_code(o, "INTERNAL_ERROR", "the VM's QEMU is not running", NULL);
	return d;
}

/* A QMP reply that just ends the step: errors end the operation. */
static bool qmp_failed(struct op *o, const xn_error *err, const char *what)
{
	if (!err)
		return false;
	xn_error *e = NULL;
	xn_fail_internal(&e, "%s: %s", what, err->message);
	op_end(o, e, NULL);
	return true;
}

/* ---- start ----------------------------------------------------------- */

static void started(void *ud, xn_error *err)
{
	op_end(ud, err, NULL);
}

static void vm_start(xn_call *c)
{
	struct op *o = op_begin(c, "start");
	if (o)
		xn_dom_start(o->h, o->vm, xn_call_arg_bool(c, 1), -1, started, o);
}

/* ---- shutdown and reboot --------------------------------------------- */

static void stopped(struct dom *d, void *ud)
{
	(void)d;
	struct op *o = ud;
	if (strcmp(o->name, "clean_reboot") == 0 || strcmp(o->name, "hard_reboot") == 0) {
		xn_dom_start(o->h, o->vm, false, -1, started, o);
		return;
	}
	op_end(o, NULL, NULL);
}

static void clean_timeout(uv_timer_t *t)
{
	struct op *o = t->data;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (d) {
		d->expected = false;
		d->on_exit = NULL;
		d->on_exit_ud = NULL;
	}
	XN_AUTOFREE char *secs = xn_asprintf("%u", o->h->clean_shutdown_timeout_ms / 1000);
	xn_warn("vm %s: the guest did not shut down within %s s",
		xn_db_str(o->h->db, o->vm, "uuid"), secs);
	op_fail_code(o, "VM_SHUTDOWN_TIMEOUT", o->vm, secs);
}

static void on_powerdown(void *ud, json_t *ret, const xn_error *err);

/* A guest still booting misses the button: press it again every few
 * seconds until the guest stops or the timeout runs out. */
static void press_again(uv_timer_t *t)
{
	struct op *o = t->data;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (xn_now_ms() - o->since >= o->h->clean_shutdown_timeout_ms || !d) {
		clean_timeout(t);
		return;
	}
	xn_dom_qmp(d, "system_powerdown", NULL, on_powerdown, o);
}

static void on_powerdown(void *ud, json_t *ret, const xn_error *err)
{
	struct op *o = ud;
	(void)ret;
	if (err) {
		struct dom *d = xn_dom_find(o->h, o->vm);
		if (!d)
			return; /* QEMU is exiting: its exit path (stopped) ends the op */
		if (!d->qmp || !o->press_failed) {
			/* The monitor closed, or is closing (its pending replies fail
			 * first, "connection reset", before it is seen closed): QEMU
			 * is on its way out, as the guest obeyed an earlier press or
			 * its agent. Wait and press again, up to the timeout; a
			 * second failure in a row with the monitor up is an error. */
			o->press_failed = true;
			op_timer(o, 200, press_again);
			return;
		}
		d->expected = false;
		d->on_exit = NULL;
		qmp_failed(o, err, "cannot press the power button");
		return;
	}
	o->press_failed = false;
	uint64_t left = o->h->clean_shutdown_timeout_ms - (xn_now_ms() - o->since);
	op_timer(o, left < 3000 ? left : 3000, press_again);
}

/* The agent took the request, but the guest is still there at half the
 * timeout: the button as well. */
static void agent_too_slow(uv_timer_t *t)
{
	struct op *o = t->data;
	xn_info("vm %s: %s: still running after the guest agent's shutdown: pressing the ACPI "
		"power button", xn_db_str(o->h->db, o->vm, "uuid"), o->name);
	press_again(t);
}

/* The guest agent took the request (by_agent), or cannot: then the ACPI
 * power button. */
static void on_guest_shutdown(void *ud, bool by_agent)
{
	struct op *o = ud;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (!d)
		return; /* QEMU is exiting: its exit path (stopped) ends the op */
	if (by_agent) {
		op_timer(o, o->h->clean_shutdown_timeout_ms / 2, agent_too_slow);
		return;
	}
	xn_info("vm %s: %s: pressing the ACPI power button", d->uuid, o->name);
	xn_dom_qmp(d, "system_powerdown", NULL, on_powerdown, o);
}

/* Clean: through the guest agent when it answers, else the ACPI power
 * button; then wait for the guest to stop. */
static void clean_stop(xn_call *c, const char *name)
{
	struct op *o = op_begin(c, name);
	struct dom *d = o ? op_dom(o) : NULL;
	if (!d)
		return;
	d->expected = true;
	d->on_exit = stopped;
	d->on_exit_ud = o;
	o->since = xn_now_ms();
	xn_vm_guest_shutdown(d, strcmp(name, "clean_reboot") == 0, on_guest_shutdown, o);
}

static void kill_timeout(uv_timer_t *t)
{
	struct op *o = t->data;
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (d)
		xn_dom_kill(d);
}

static void on_quit(void *ud, json_t *ret, const xn_error *err)
{
	(void)ret;
	(void)err; /* QEMU may close the monitor before answering */
	struct op *o = ud;
	op_timer(o, 5000, kill_timeout);
}

/* Hard: QMP quit (QEMU flushes its caches), SIGKILL if it hangs. */
static void hard_stop(struct op *o)
{
	struct dom *d = op_dom(o);
	if (!d)
		return;
	d->expected = true;
	d->on_exit = stopped;
	d->on_exit_ud = o;
	if (!d->qmp) {
		xn_dom_kill(d);
		return;
	}
	xn_dom_qmp(d, "quit", NULL, on_quit, o);
}

static char *drop_suspend_image(xn_host *h, xn_changes *cs, const char *vm);
static void remove_image(char *path, bool committed);

static void vm_hard_shutdown(xn_call *c)
{
	struct op *o = op_begin(c, "hard_shutdown");
	if (!o)
		return;
	if (strcmp(xn_db_str(o->h->db, o->vm, "power_state"), "Suspended") == 0) {
		xn_changes *cs = xn_changes_new(o->h->db);
		xn_error *err = NULL;
		char *image = drop_suspend_image(o->h, cs, o->vm);
		xn_changes_set(cs, o->vm, "power_state", json_string("Halted"));
		remove_image(image, xn_db_commit(o->h->db, cs, &err) == 0);
		op_end(o, err, NULL);
		return;
	}
	hard_stop(o);
}

static void vm_clean_shutdown(xn_call *c)
{
	clean_stop(c, "clean_shutdown");
}

static void vm_clean_reboot(xn_call *c)
{
	clean_stop(c, "clean_reboot");
}

static void vm_hard_reboot(xn_call *c)
{
	struct op *o = op_begin(c, "hard_reboot");
	if (o)
		hard_stop(o);
}

/* ---- pause ------------------------------------------------------------ */

static void paused_or_not(void *ud, json_t *ret, const xn_error *err)
{
	struct op *o = ud;
	(void)ret;
	if (qmp_failed(o, err, o->paused ? "cannot pause" : "cannot unpause"))
		return;
	xn_error *e = NULL;
	xn_db_set(o->h->db, o->vm, "power_state", json_string(o->paused ? "Paused" : "Running"),
		  &e);
	op_end(o, e, NULL);
}

static void set_paused(xn_call *c, bool pause)
{
	struct op *o = op_begin(c, pause ? "pause" : "unpause");
	struct dom *d = o ? op_dom(o) : NULL;
	if (!d)
		return;
	o->paused = pause;
	xn_dom_qmp(d, pause ? "stop" : "cont", NULL, paused_or_not, o);
}

static void vm_pause(xn_call *c)
{
	set_paused(c, true);
}

static void vm_unpause(xn_call *c)
{
	set_paused(c, false);
}

/* ---- suspend ---------------------------------------------------------- *
 * stop -> save the memory to a file (xn_vm_save_memory: migrate into an
 * fd, unlimited bandwidth, fsync) -> record Suspended -> quit QEMU. If a
 * step fails the guest continues where it was. */

static void ignore_reply(void *ud, json_t *ret, const xn_error *err)
{
	(void)ud;
	(void)ret;
	(void)err;
}

static void suspend_abort(struct op *o, const xn_error *why)
{
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (d)
		xn_dom_qmp(d, "cont", NULL, ignore_reply, NULL);
	if (o->state_path)
		unlink(o->state_path);
	xn_error *e = NULL;
	xn_fail_internal(&e, "cannot suspend: %s", why ? why->message : "saving the memory failed");
	op_end(o, e, NULL);
}

static void suspend_exited(struct dom *d, void *ud)
{
	(void)d;
	op_end(ud, NULL, NULL);
}

static void suspend_record(struct op *o)
{
	xn_host *h = o->h;
	struct stat st = {0};
	stat(o->state_path, &st);
	xn_changes *cs = xn_changes_new(h->db);
	XN_AUTOFREE char *loc = xn_asprintf("%s.state", o->state_uuid);
	const char *vdi = xn_changes_add(
		cs, xn_model_class("VDI"), NULL,
		json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:b}", "uuid", o->state_uuid, "name_label",
			  "Suspend image", "SR", h->local_sr_ref, "location", loc, "virtual_size",
			  (json_int_t)st.st_size, "physical_utilisation", (json_int_t)st.st_size,
			  "type", "suspend", "managed", 1));
	json_t *rec = xn_changes_edit(cs, o->vm);
	json_object_set_new(rec, "suspend_VDI", json_string(vdi));
	json_object_set_new(rec, "power_state", json_string("Suspended"));
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		suspend_abort(o, err);
		xn_error_free(err);
		return;
	}
	struct dom *d = xn_dom_find(h, o->vm);
	if (!d) {
		op_end(o, NULL, NULL);
		return;
	}
	d->expected = true;
	d->on_exit = suspend_exited;
	d->on_exit_ud = o;
	xn_dom_qmp(d, "quit", NULL, on_quit, o);
}

/* The domain for the next suspend step, or NULL after aborting because
 * the last step failed or QEMU is gone. */
static struct dom *suspend_step(struct op *o, const xn_error *err)
{
	struct dom *d = xn_dom_find(o->h, o->vm);
	if (err || !d) {
		suspend_abort(o, err);
		return NULL;
	}
	return d;
}

static void on_saved(void *ud, xn_error *err)
{
	struct op *o = ud;
	if (suspend_step(o, err))
		suspend_record(o);
	xn_error_free(err);
}

static void on_stopped_for_suspend(void *ud, json_t *ret, const xn_error *err)
{
	(void)ret;
	struct op *o = ud;
	if (!suspend_step(o, err))
		return;
	o->state_uuid = xn_uuid_new();
	XN_AUTOFREE char *dir = xn_sr_file_dir(o->h, o->h->local_sr_ref);
	o->state_path = xn_asprintf("%s/%s.state", dir, o->state_uuid);
	xn_vm_save_memory(o->h, o->vm, o->state_path, on_saved, o);
}

static void vm_suspend(xn_call *c)
{
	struct op *o = op_begin(c, "suspend");
	struct dom *d = o ? op_dom(o) : NULL;
	if (!d)
		return;
	xn_dom_qmp(d, "stop", NULL, on_stopped_for_suspend, o);
}

/* ---- resume ----------------------------------------------------------- */

/* Forget the VM's suspend image in cs and return its file, which the
 * caller removes only once cs is committed (remove_image): a crash in
 * between leaves a file no VDI claims, which the next start collects,
 * never a VDI whose file is gone. */
static char *drop_suspend_image(xn_host *h, xn_changes *cs, const char *vm)
{
	const char *vdi = xn_db_str(h->db, vm, "suspend_VDI");
	char *path = NULL;
	if (!xn_ref_is_null(vdi) && xn_db_get(h->db, vdi)) {
		path = xn_vdi_path(h, vdi);
		xn_changes_delete(cs, vdi);
	}
	xn_changes_set(cs, vm, "suspend_VDI", json_string(XN_NULL_REF));
	return path;
}

static void remove_image(char *path, bool committed)
{
	if (committed && path && unlink(path) < 0 && errno != ENOENT)
		xn_warn("vm: cannot remove the suspend image '%s': %s", path, strerror(errno));
	free(path);
}

static void resumed(void *ud, xn_error *err)
{
	struct op *o = ud;
	if (!err) {
		xn_changes *cs = xn_changes_new(o->h->db);
		char *image = drop_suspend_image(o->h, cs, o->vm);
		remove_image(image, xn_db_commit(o->h->db, cs, &err) == 0);
	}
	op_end(o, err, NULL);
}

static void vm_resume(xn_call *c)
{
	struct op *o = op_begin(c, "resume");
	if (!o)
		return;
	const char *vdi = xn_db_str(o->h->db, o->vm, "suspend_VDI");
	XN_AUTOFREE char *path = xn_ref_is_null(vdi) ? NULL : xn_vdi_path(o->h, vdi);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0) {
		op_fail_code(o, "VDI_MISSING", xn_db_str(o->h->db, vdi, "SR"), vdi);
		return;
	}
	xn_dom_start(o->h, o->vm, xn_call_arg_bool(c, 1), fd, resumed, o);
}

/* ---- destroy ---------------------------------------------------------- */

static void vm_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	json_t *rec = xn_db_get(h->db, vm);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, rec, "destroy", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	char *image = drop_suspend_image(h, cs, vm);
	static const char *owned[] = {"VBDs", "VIFs", "consoles", NULL};
	for (size_t k = 0; owned[k]; k++) {
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(rec, owned[k]), i, r)
			xn_changes_delete(cs, json_string_value(r));
	}
	static const char *single[] = {"metrics", "guest_metrics", NULL};
	for (size_t k = 0; single[k]; k++)
		if (!xn_ref_is_null(json_string_value(json_object_get(rec, single[k]))))
			xn_changes_delete(cs, json_string_value(json_object_get(rec, single[k])));
	xn_changes_delete(cs, vm);
	XN_AUTOFREE char *uuid = xn_strdup(json_string_value(json_object_get(rec, "uuid")));
	bool committed = xn_db_commit(h->db, cs, &err) == 0;
	remove_image(image, committed);
	if (committed)
		xn_cloud_init_forget(h, uuid);
	if (!committed)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

const xn_api_method xn_vm_lifecycle_methods[] = {
	{"VM.start", vm_start},
	{"VM.clean_shutdown", vm_clean_shutdown},
	{"VM.hard_shutdown", vm_hard_shutdown},
	{"VM.clean_reboot", vm_clean_reboot},
	{"VM.hard_reboot", vm_hard_reboot},
	{"VM.pause", vm_pause},
	{"VM.unpause", vm_unpause},
	{"VM.suspend", vm_suspend},
	{"VM.resume", vm_resume},
	{"VM.destroy", vm_destroy},
	{NULL, NULL},
};
