/* vm_runtime.c: QEMU processes of running VMs (vm_runtime.h).
 *
 * Start: ask storage to prepare each disk (xn_vdi_prepare_attach: a
 * disk others are based on gets its own overlay first; a disk written by
 * another running VM is refused), build the argv from the records (a
 * pure function, engine/), spawn QEMU paused, record its pid in an
 * xn_domain record, connect QMP, apply its CPU and memory settings
 * (vm_resources.h), resume it, attach the console, record
 * the VM Running and its VBDs currently_attached. Any failure kills the
 * QEMU and leaves the VM Halted, its VBDs detached.
 *
 * Exit: however a QEMU goes away (its exit status while we are its
 * parent, QMP closing after a re-attach), dom_gone() runs once: the VM
 * is recorded Halted, then either the operation that asked for it
 * continues (on_exit) or the VM's actions_after_shutdown/reboot/crash
 * decide whether it starts again.
 *
 * Restart of the daemon: xn_vms_init() re-attaches to every QEMU that
 * an xn_domain record names and that still runs, and settles every
 * other case (see reconcile()). */
#include "vm/vm_runtime.h"

#include "vm/vm_resources.h"
#include "vm/cloud_init.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console/console.h"
#include "engine/qemu_argv.h"
#include "net/net.h"
#include "net/netlink.h"
#include "engine/qmp_commands.h"
#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/pv_boot.h"
#include "vm/vm_guest.h"

static struct dom *doms;

struct xn_vms {
	int unused;
};

struct dom *xn_dom_find(xn_host *h, const char *vm_ref)
{
	(void)h;
	for (struct dom *d = doms; d; d = d->next)
		if (!d->gone && strcmp(d->ref, vm_ref) == 0)
			return d;
	return NULL;
}

char *xn_vm_op_mark(xn_call *c, const char *vm, const char *name, bool *own_task,
		    xn_error **err)
{
	xn_host *h = c->host;
	if (xn_vm_check_op(vm, xn_db_get(h->db, vm), name, err) < 0)
		return NULL;
	xn_changes *cs = xn_changes_new(h->db);
	XN_AUTOFREE char *label = xn_asprintf("VM.%s", name);
	const char *task = c->task;
	if (!task) {
		xn_tasks_gc(h, 600);
		task = xn_task_add(cs, h, label);
	}
	char *mine = xn_strdup(task);
	json_t *ops = json_object_get(xn_changes_edit(cs, vm), "current_operations");
	json_object_set_new(ops, mine, json_string(name));
	xn_vm_refresh_allowed(cs, vm);
	if (xn_db_commit(h->db, cs, err) < 0) {
		free(mine);
		return NULL;
	}
	*own_task = !c->task;
	if (!c->task)
		c->task = xn_strdup(mine);
	return mine;
}

void xn_vm_op_unmark(xn_host *h, const char *vm, const char *task, const char *name,
		     bool own_task, const xn_error *err, json_t *result)
{
	xn_changes *cs = xn_changes_new(h->db);
	json_t *rec = xn_changes_edit(cs, vm);
	if (rec) {
		json_object_del(json_object_get(rec, "current_operations"), task);
		xn_vm_refresh_allowed(cs, vm);
	}
	if (own_task)
		xn_task_settle(cs, task, err, result, NULL);
	XN_AUTOERR xn_error *cerr = NULL;
	if (xn_db_commit(h->db, cs, &cerr) < 0)
		xn_error_log("vm: cannot finish %s: %s", name, cerr->message);
}

void xn_vm_refresh_allowed(xn_changes *cs, const char *vm_ref)
{
	json_t *rec = xn_changes_edit(cs, vm_ref);
	if (rec)
		json_object_set_new(rec, "allowed_operations", xn_vm_allowed_ops(rec));
}

static const char *domain_record_of(xn_host *h, const char *vm_ref)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("xn_domain")), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "VM")), vm_ref))
			return k;
	return NULL;
}

static void dom_free(struct dom *d)
{
	for (struct dom **p = &doms; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	free(d->ref);
	free(d->uuid);
	free(d->run_dir);
	free(d->shutdown_reason);
	json_decref(d->locks);
	free(d);
}

/* currently_attached of the VBDs in vbds (refs), changed only where it
 * differs, so an unchanged VBD sends no event. */
static void set_attached(xn_host *h, xn_changes *cs, json_t *vbds, bool on)
{
	size_t i;
	json_t *v;
	json_array_foreach(vbds, i, v) {
		const char *vbd = json_string_value(v);
		if (xn_db_get(h->db, vbd) && xn_db_bool(h->db, vbd, "currently_attached") != on)
			xn_changes_set(cs, vbd, "currently_attached", json_boolean(on));
	}
}

/* Record a VM as no longer running: Halted, no domain, no console, its
 * VBDs detached. */
static void record_halted(xn_host *h, xn_changes *cs, const char *vm_ref, bool keep_suspended)
{
	json_t *rec = xn_changes_edit(cs, vm_ref);
	if (!rec)
		return;
	if (!keep_suspended || !xn_streq(json_string_value(json_object_get(rec, "power_state")),
					 "Suspended"))
		json_object_set_new(rec, "power_state", json_string("Halted"));
	json_object_set_new(rec, "resident_on", json_string(XN_NULL_REF));
	json_object_set_new(rec, "domid", json_integer(-1));
	size_t i;
	json_t *con;
	json_t *consoles = json_deep_copy(json_object_get(rec, "consoles"));
	json_array_foreach(consoles, i, con) xn_changes_delete(cs, json_string_value(con));
	json_decref(consoles);
	const char *dr = domain_record_of(h, vm_ref);
	if (dr)
		xn_changes_delete(cs, dr);
	set_attached(h, cs, json_object_get(rec, "VBDs"), false);
	set_attached(h, cs, json_object_get(rec, "VIFs"), false);
	xn_vm_guest_halted(h, cs, vm_ref);
	xn_vm_refresh_allowed(cs, vm_ref);
}

static void after_exit_policy(struct dom *d);
static void start_finish(struct start *s, xn_error *err);

/* The last lines QEMU wrote, for error messages. */
static char *log_tail(const char *run_dir)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/qemu.log", run_dir);
	size_t len = 0;
	XN_AUTOFREE char *text = xn_read_file(path, &len, NULL);
	if (!text)
		return xn_strdup("");
	size_t from = len > 400 ? len - 400 : 0;
	char *tail = xn_strdup(text + from);
	for (char *p = tail; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return tail;
}

/* The QEMU of d is gone, whatever the reason: record it, then continue. */
static void dom_gone(struct dom *d)
{
	if (d->gone)
		return;
	d->gone = true;
	xn_host *h = d->h;
	xn_console_detach(h, d->ref);
	if (d->qmp) {
		xn_qmp *q = d->qmp;
		d->qmp = NULL;
		xn_qmp_close(q);
	}
	xn_vm_guest_detach(d);
	if (d->poll) {
		uv_close((uv_handle_t *)d->poll, (uv_close_cb)free);
		d->poll = NULL;
	}
	if (d->proc) {
		xn_qemu_proc_release(d->proc);
		d->proc = NULL;
	}
	size_t i;
	json_t *vif;
	json_array_foreach(xn_db_field(h->db, d->ref, "VIFs"), i, vif) {
		/* its taps went with QEMU; nftables keeps their ingress limits */
		XN_AUTOFREE char *tap = xn_net_tap_name(d->uuid, xn_db_str(h->db, json_string_value(vif),
									 "device"));
		xn_nl_rate_limit_drop(tap, NULL);
	}
	xn_changes *cs = xn_changes_new(h->db);
	record_halted(h, cs, d->ref, true);
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_error_log("vm %s: cannot record halt: %s", d->uuid, err->message);
	if (d->starting) {
		struct start *s = d->starting;
		d->starting = NULL;
		d->expected = true;
		XN_AUTOFREE char *tail = log_tail(d->run_dir);
		xn_error *e = NULL;
		xn_fail_internal(&e, "QEMU exited while the VM was starting: %s", tail);
		start_finish(s, e);
	}
	xn_rm_rf(d->run_dir, NULL);
	xn_vm_disk_release(h, d->locks, NULL);
	xn_dom_resources_release(d);
	if (d->on_exit)
		d->on_exit(d, d->on_exit_ud);
	else
		after_exit_policy(d);
	dom_free(d);
}

static void on_proc_exit(void *ud, int64_t status, int sig)
{
	struct dom *d = ud;
	xn_info("vm %s: QEMU exited (status %lld, signal %d)", d->uuid, (long long)status, sig);
	d->proc = NULL; /* released by the engine after this callback */
	dom_gone(d);
}

/* A re-attached QEMU is not our child: once QMP closes, wait for its pid
 * to disappear. */
static void poll_pid(uv_timer_t *t)
{
	struct dom *d = t->data;
	if (kill(d->pid, 0) < 0 || !xn_qemu_proc_is(d->pid, d->ticks, d->uuid))
		dom_gone(d);
}

static void on_qmp_closed(void *ud)
{
	struct dom *d = ud;
	d->qmp = NULL;
	if (d->gone || d->proc)
		return; /* our child: its exit status follows */
	if (!d->poll) {
		d->poll = xn_calloc(1, sizeof(uv_timer_t));
		uv_timer_init(d->h->loop, d->poll);
		d->poll->data = d;
		uv_timer_start(d->poll, poll_pid, 0, 50);
	}
}

static void on_qmp_event(void *ud, const char *name, json_t *data)
{
	struct dom *d = ud;
	if (strcmp(name, "SHUTDOWN") == 0) {
		free(d->shutdown_reason);
		d->shutdown_reason = xn_strdup(json_string_value(json_object_get(data, "reason")));
	} else if (strcmp(name, "DEVICE_DELETED") == 0) {
		const char *dev = json_string_value(json_object_get(data, "device"));
		if (dev) {
			xn_vbd_device_deleted(d, dev);
			xn_vif_device_deleted(d, dev);
		}
	} else if (strcmp(name, "VSERPORT_CHANGE") == 0) {
		xn_vm_guest_port_event(d, data);
	} else if (strcmp(name, "GUEST_PANICKED") == 0) {
		d->panicked = true;
		xn_warn("vm %s: guest panicked", d->uuid);
		after_exit_policy(d);
	} else if (strcmp(name, "STOP") == 0 || strcmp(name, "RESUME") == 0) {
		/* Pauses we did not ask for (e.g. a full disk) show in the record. */
		json_t *ps = xn_db_field(d->h->db, d->ref, "power_state");
		const char *want = name[0] == 'S' ? "Paused" : "Running";
		bool busy = json_object_size(xn_db_field(d->h->db, d->ref, "current_operations")) > 0;
		if (busy || !json_is_string(ps) || strcmp(json_string_value(ps), "Suspended") == 0 ||
		    strcmp(json_string_value(ps), want) == 0 || d->expected || d->starting)
			return;
		xn_info("vm %s: %s by QEMU", d->uuid, name[0] == 'S' ? "paused" : "resumed");
		xn_changes *cs = xn_changes_new(d->h->db);
		xn_changes_set(cs, d->ref, "power_state", json_string(want));
		xn_vm_refresh_allowed(cs, d->ref);
		xn_error *err = NULL;
		if (xn_db_commit(d->h->db, cs, &err) < 0) {
			xn_warn("vm %s: cannot record the pause: %s", d->uuid, err->message);
			xn_error_free(err);
		}
	} else if (strcmp(name, "BALLOON_CHANGE") == 0) {
		xn_dom_balloon_changed(d, data);
	} else if (strcmp(name, "BLOCK_IO_ERROR") == 0) {
		json_t *ns = json_object_get(data, "nospace");
		xn_warn("vm %s: I/O error on disk %s (%s)%s: %s", d->uuid,
			json_string_value(json_object_get(data, "device")) ?: "?",
			json_string_value(json_object_get(data, "operation")) ?: "?",
			json_is_true(ns) ? ", no space left on its SR" : "",
			json_string_value(json_object_get(data, "reason")) ?: "");
	}
}

void xn_dom_kill(struct dom *d)
{
	d->expected = true;
	if (d->gone)
		return;
	xn_qemu_proc_kill(d->pid, NULL);
}

void xn_dom_qmp(struct dom *d, const char *cmd, json_t *args, xn_qmp_reply_fn fn, void *ud)
{
	if (!d->qmp) {
		json_decref(args);
		XN_AUTOERR xn_error *err = NULL;
		xn_fail_internal(&err, "VM %s: QEMU's monitor is not connected", d->uuid);
		fn(ud, NULL, err);
		return;
	}
	xn_qmp_command(d->qmp, cmd, args, fn, ud);
}

/* ---- disks ----------------------------------------------------------- */

struct node_query {
	char *id;
	xn_dom_node_fn fn;
	void *ud;
};

static void node_reply(void *ud, json_t *ret, const xn_error *err)
{
	struct node_query *q = ud;
	const char *node = err ? NULL : xn_qmp_block_node_of(ret, q->id);
	xn_error *e = NULL;
	if (!err && !node)
		xn_fail_internal(&e, "QEMU has no disk '%s' with a medium", q->id);
	q->fn(q->ud, node, err ? err : e);
	xn_error_free(e);
	free(q->id);
	free(q);
}

void xn_dom_disk_node(struct dom *d, const char *userdevice, xn_dom_node_fn fn, void *ud)
{
	struct node_query *q = xn_calloc(1, sizeof(*q));
	q->id = xn_asprintf("vbd-%s", userdevice);
	q->fn = fn;
	q->ud = ud;
	xn_dom_qmp(d, "query-block", NULL, node_reply, q);
}

/* ---- start ----------------------------------------------------------- */

struct start {
	xn_host *h;
	struct dom *d;
	bool paused, incoming;
	bool bootloader;            /* QEMU loads the bootloader's files from the run dir */
	int polls;
	uv_timer_t *timer;
	dom_started_fn done;
	void *ud;
	json_t *vbds;               /* the VBDs in the argv: attached once running */
};

/* QEMU has read the bootloader's kernel and initrd by now (it loads
 * them while it builds the machine, before its monitor answers): they
 * need not take space in the run directory while the VM runs. */
static void remove_boot_files(const char *run_dir)
{
	const char *names[] = {XN_PV_BOOT_KERNEL, XN_PV_BOOT_INITRD};
	for (size_t i = 0; i < XN_ARRAY_LEN(names); i++) {
		XN_AUTOFREE char *path = xn_asprintf("%s/%s", run_dir, names[i]);
		unlink(path);
	}
}

static void start_finish(struct start *s, xn_error *err)
{
	if (s->timer)
		uv_close((uv_handle_t *)s->timer, (uv_close_cb)free);
	struct dom *d = s->d;
	if (d && d->starting == s)
		d->starting = NULL;
	if (d && s->bootloader)
		remove_boot_files(d->run_dir);
	if (err && d && !d->gone) {
		xn_warn("vm %s: start failed: %s", d->uuid, err->message);
		d->expected = true;
		/* The exit path records the VM Halted; tell the caller after. */
		d->on_exit = NULL;
		xn_qemu_proc_kill(d->pid, NULL);
	}
	s->done(s->ud, err);
	json_decref(s->vbds);
	free(s);
}

/* VMs booted by firmware have VGA, shown on a VNC socket in their run
 * directory (engine/qemu_argv.c): an rfb console, as xapi lists for HVM
 * guests; GET /console on it is the display over a websocket. */
static void add_rfb_console(xn_host *h, xn_changes *cs, const char *vm)
{
	const char *con = xn_changes_add(cs, xn_model_class("console"), NULL,
					 json_pack("{s:s,s:s}", "protocol", "rfb", "VM", vm));
	XN_AUTOFREE char *loc = xn_asprintf("https://%s/console?ref=%s", xn_host_address(h), con);
	xn_changes_set(cs, con, "location", json_string(loc));
}

static void record_running(struct start *s)
{
	xn_host *h = s->h;
	struct dom *d = s->d;
	xn_changes *cs = xn_changes_new(h->db);
	json_t *rec = xn_changes_edit(cs, d->ref);
	json_object_set_new(rec, "power_state", json_string(s->paused ? "Paused" : "Running"));
	json_object_set_new(rec, "resident_on", json_string(h->host_ref));
	json_object_set_new(rec, "domid", json_integer(d->pid));
	const char *metrics = json_string_value(json_object_get(rec, "metrics"));
	json_t *m = metrics ? xn_changes_edit(cs, metrics) : NULL;
	if (m) {
		json_object_set_new(m, "start_time", xn_datetime_now());
		json_object_set(m, "VCPUs_number", json_object_get(rec, "VCPUs_at_startup"));
		json_object_set(m, "memory_actual", json_object_get(rec, "memory_static_max"));
		json_object_set_new(m, "last_updated", xn_datetime_now());
	}
	const char *con = xn_changes_add(cs, xn_model_class("console"), NULL,
					 json_pack("{s:s,s:s}", "protocol", "vt100", "VM", d->ref));
	XN_AUTOFREE char *loc = xn_asprintf("https://%s/console?ref=%s", xn_host_address(h), con);
	xn_changes_set(cs, con, "location", json_string(loc));
	const char *kernel = json_string_value(json_object_get(rec, "PV_kernel"));
	if ((!kernel || !kernel[0]) && !s->bootloader)
		add_rfb_console(h, cs, d->ref);
	set_attached(h, cs, s->vbds, true);
	set_attached(h, cs, xn_db_field(h->db, d->ref, "VIFs"), true);
	xn_vm_refresh_allowed(cs, d->ref);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		start_finish(s, err);
		return;
	}
	xn_info("vm %s: %s", d->uuid, s->paused ? "started paused" : "running");
	xn_vm_guest_attach(d);
	start_finish(s, NULL);
}

static void on_cont(void *ud, json_t *ret, const xn_error *err)
{
	struct start *s = ud;
	(void)ret;
	if (err) {
		xn_error *e = NULL;
		xn_fail_internal(&e, "cannot resume QEMU: %s", err->message);
		start_finish(s, e);
		return;
	}
	record_running(s);
}

static void go(struct start *s)
{
	xn_error *err = NULL;
	if (xn_dom_resources_start(s->d, &err) < 0) {
		start_finish(s, err);
		return;
	}
	xn_console_attach(s->h, s->d->ref, NULL);
	if (s->paused)
		record_running(s);
	else
		xn_dom_qmp(s->d, "cont", NULL, on_cont, s);
}

static void incoming_status(void *ud, json_t *ret, const xn_error *err);

static void incoming_poll(uv_timer_t *t)
{
	struct start *s = t->data;
	xn_dom_qmp(s->d, "query-status", NULL, incoming_status, s);
}

/* Resuming: wait until QEMU has read the whole saved state. */
static void incoming_status(void *ud, json_t *ret, const xn_error *err)
{
	struct start *s = ud;
	const char *st = json_string_value(json_object_get(ret, "status"));
	if (err || !st) {
		xn_error *e = NULL;
		xn_fail(&e, "INTERNAL_ERROR", "cannot restore the saved memory image", NULL);
		start_finish(s, e);
		return;
	}
	if (strcmp(st, "inmigrate") == 0) {
		if (++s->polls > 3000) {
			xn_error *e = NULL;
			xn_fail_internal(&e, "restoring the saved memory image timed out");
			start_finish(s, e);
			return;
		}
		if (!s->timer) {
			s->timer = xn_calloc(1, sizeof(uv_timer_t));
			uv_timer_init(s->h->loop, s->timer);
			s->timer->data = s;
		}
		uv_timer_start(s->timer, incoming_poll, 20, 0);
		return;
	}
	go(s);
}

static void reply_ignored(void *ud, json_t *ret, const xn_error *err)
{
	(void)ud;
	(void)ret;
	(void)err;
}

/* A re-attached QEMU of a VM recorded Running may have been left stopped
 * by a suspend or pause the previous daemon did not finish (it died after
 * stopping the guest, before recording anything): let the guest continue,
 * as a failed suspend does. Other stops (a panic, an I/O error) stay. */
static void reattach_status(void *ud, json_t *ret, const xn_error *err)
{
	struct dom *d = ud;
	const char *st = json_string_value(json_object_get(ret, "status"));
	if (err || !st || d->gone ||
	    !xn_streq(xn_db_str(d->h->db, d->ref, "power_state"), "Running") ||
	    (strcmp(st, "paused") != 0 && strcmp(st, "postmigrate") != 0 &&
	     strcmp(st, "finish-migrate") != 0))
		return;
	xn_warn("vm %s: QEMU was left %s by an interrupted operation: continuing the guest",
		d->uuid, st);
	xn_dom_qmp(d, "migrate_cancel", NULL, reply_ignored, NULL);
	xn_dom_qmp(d, "cont", NULL, reply_ignored, NULL);
}

/* After a re-attach: which NICs QEMU really has (a daemon that died in
 * the middle of a hot-plug recorded one state, QEMU may be in the
 * other); currently_attached follows QEMU. */
static void reattach_nics(void *ud, json_t *ret, const xn_error *err)
{
	struct dom *d = ud;
	if (err || d->gone)
		return;
	xn_host *h = d->h;
	xn_changes *cs = xn_changes_new(h->db);
	size_t i, k;
	json_t *v, *p;
	json_array_foreach(xn_db_field(h->db, d->ref, "VIFs"), i, v) {
		const char *vif = json_string_value(v);
		XN_AUTOFREE char *id = xn_asprintf("vif-%s", xn_db_str(h->db, vif, "device"));
		bool there = false;
		json_array_foreach(ret, k, p)
			there |= xn_streq(json_string_value(json_object_get(p, "name")), id);
		if (there != xn_db_bool(h->db, vif, "currently_attached")) {
			xn_warn("vm %s: NIC %s is %s in QEMU: recorded so", d->uuid, id,
				there ? "present" : "absent");
			xn_changes_set(cs, vif, "currently_attached", json_boolean(there));
		}
	}
	xn_error *e = NULL;
	if (xn_db_commit(h->db, cs, &e) < 0) {
		xn_warn("vm %s: %s", d->uuid, e->message);
		xn_error_free(e);
	}
}

static void reattach_disks_done(void *ud, xn_error *err)
{
	char *vm = ud;
	xn_error_free(err);
	struct dom *d = xn_dom_find(NULL, vm);
	if (d && d->qmp && !d->gone) {
		xn_dom_qmp(d, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"),
			   reattach_nics, d);
		xn_dom_qmp(d, "query-status", NULL, reattach_status, d);
	}
	free(vm);
}

static void on_qmp_ready(void *ud, const xn_error *err)
{
	struct dom *d = ud;
	struct start *s = d->starting;
	if (!s) {
		/* a re-attach; nothing waits: disks first, then the guest may go on */
		if (!err) {
			xn_dom_resources_reattach(d);
			xn_vm_disks_reconcile(d->h, d->ref, reattach_disks_done, xn_strdup(d->ref));
		}
		return;
	}
	if (err) {
		xn_error *e = NULL;
		xn_fail_internal(&e, "cannot talk to QEMU: %s", err->message);
		start_finish(s, e);
		return;
	}
	if (s->incoming)
		xn_dom_qmp(d, "query-status", NULL, incoming_status, s);
	else
		go(s);
}

static void connect_qmp(struct dom *d)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/qmp.sock", d->run_dir);
	struct xn_qmp_callbacks cb = {.ready = on_qmp_ready, .event = on_qmp_event,
				      .closed = on_qmp_closed, .ud = d};
	d->qmp = xn_qmp_connect(d->h->loop, path, 15000, &cb);
}

/* The disks of a VM, in the engine's terms (nodes owned by *nodes, a
 * JSON array), and the refs of their VBDs in *vbds. */
static xn_qemu_disk *collect_disks(xn_host *h, json_t *vm, size_t *n, json_t **nodes,
				   json_t **vbds)
{
	json_t *refs = json_object_get(vm, "VBDs");
	xn_qemu_disk *disks = xn_calloc(json_array_size(refs) + 1, sizeof(*disks));
	*nodes = json_array();
	*vbds = json_array();
	size_t i, k = 0;
	json_t *v;
	json_array_foreach(refs, i, v) {
		json_t *vbd = xn_db_get(h->db, json_string_value(v));
		if (!vbd)
			continue;
		const char *vdi_ref = json_string_value(json_object_get(vbd, "VDI"));
		json_t *vdi = xn_ref_is_null(vdi_ref) || json_is_true(json_object_get(vbd, "empty"))
				      ? NULL
				      : xn_db_get(h->db, vdi_ref);
		json_t *node = vdi ? xn_vdi_node(h, vdi_ref) : NULL;
		disks[k].vbd = vbd;
		disks[k].vdi = vdi;
		disks[k].node = node;
		if (node)
			json_array_append_new(*nodes, node);
		disks[k].format = vdi ? xn_vdi_format(h, vdi_ref) : NULL;
		json_array_append(*vbds, v);
		k++;
	}
	*n = k;
	return disks;
}

bool xn_vbd_writable(xn_host *h, const char *vbd_ref)
{
	const char *vdi = xn_db_str(h->db, vbd_ref, "VDI");
	return xn_streq(xn_db_str(h->db, vbd_ref, "type"), "Disk") &&
	       xn_streq(xn_db_str(h->db, vbd_ref, "mode"), "RW") && !xn_ref_is_null(vdi) &&
	       xn_db_get(h->db, vdi) && !xn_db_bool(h->db, vdi, "read_only");
}

/* ---- disks a VM opens: prepared, and locked on shared SRs ------------- */

struct acquire {
	xn_host *h;
	json_t *key, *locks;
	xn_storage_done done;
	void *ud;
};

static void acquire_locked(void *ud, xn_error *err)
{
	struct acquire *a = ud;
	if (!err)
		json_array_append(a->locks, a->key);
	a->done(a->ud, err);
	json_decref(a->key);
	json_decref(a->locks);
	free(a);
}

static void acquire_prepared(void *ud, xn_error *err)
{
	struct acquire *a = ud;
	if (err || !a->key) {
		acquire_locked(a, err);
		return;
	}
	xn_vdi_lock(a->h, a->key, acquire_locked, a);
}

void xn_vm_disk_acquire(xn_host *h, const char *vm_ref, const char *vbd_ref, json_t *locks,
			xn_storage_done done, void *ud)
{
	const char *vdi = xn_db_str(h->db, vbd_ref, "VDI");
	bool writable = xn_vbd_writable(h, vbd_ref);
	struct acquire *a = xn_calloc(1, sizeof(*a));
	*a = (struct acquire){.h = h, .key = writable ? xn_vdi_lock_key(h, vdi, vm_ref) : NULL,
			      .locks = json_incref(locks), .done = done, .ud = ud};
	xn_vdi_prepare_attach(h, vdi, writable, acquire_prepared, a);
}

void xn_vm_disk_release(xn_host *h, json_t *locks, const char *vdi_uuid)
{
	for (size_t i = json_array_size(locks); i-- > 0;) {
		json_t *key = json_array_get(locks, i);
		if (vdi_uuid && !xn_streq(json_string_value(json_object_get(key, "file")), vdi_uuid))
			continue;
		xn_vdi_unlock(h, key);
		json_array_remove(locks, i);
	}
}

/* The locks a VM holds on its attached disks, from its records (a daemon
 * restart) and, with all, on every disk it would open writable. */
static json_t *recorded_locks(xn_host *h, const char *vm_ref, bool all)
{
	json_t *locks = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vm_ref, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		if (!xn_vbd_writable(h, vbd) || (!all && !xn_db_bool(h->db, vbd, "currently_attached")))
			continue;
		json_t *key = xn_vdi_lock_key(h, xn_db_str(h->db, vbd, "VDI"), vm_ref);
		if (key)
			json_array_append_new(locks, key);
	}
	return locks;
}

static void dom_spawn(xn_host *h, const char *vm_ref, bool paused, int incoming_fd,
		      const char *seed, json_t *locks, xn_pv_boot *boot, dom_started_fn done,
		      void *ud);

/* Before the argv: every disk prepared by storage, one after the other. */
struct prepare {
	xn_host *h;
	char *vm;
	bool paused;
	int fd;
	json_t *vbds;     /* refs of the VBDs with a disk */
	json_t *locks;    /* the locks taken so far */
	size_t next;
	xn_pv_boot *boot; /* what the bootloader found, or NULL */
	dom_started_fn done;
	void *ud;
};

static void prepare_booted(void *ud, xn_pv_boot *boot, xn_error *err);

static void prepare_next(void *ud, xn_error *err)
{
	struct prepare *p = ud;
	xn_host *h = p->h;
	if (!err && p->next < json_array_size(p->vbds)) {
		const char *vbd = json_string_value(json_array_get(p->vbds, p->next++));
		xn_vm_disk_acquire(h, p->vm, vbd, p->locks, prepare_next, p);
		return;
	}
	int pv = err ? 0 : xn_pv_boot_wanted(xn_db_get(h->db, p->vm), &err);
	if (pv > 0) {
		XN_AUTOFREE char *run_dir = xn_asprintf("%s/%s", h->run_dir,
							xn_db_str(h->db, p->vm, "uuid"));
		xn_pv_boot_run(h, p->vm, run_dir, prepare_booted, p);
		return;
	}
	prepare_booted(p, NULL, err);
}

static void prepared(void *ud, const char *seed, xn_error *err);

/* The disks are ready and the bootloader (if any) has run: the
 * cloud-init seed, if the VM has one. */
static void prepare_booted(void *ud, xn_pv_boot *boot, xn_error *err)
{
	struct prepare *p = ud;
	p->boot = boot;
	if (err)
		prepared(p, NULL, err);
	else
		xn_cloud_init_seed(p->h, p->vm, prepared, p);
}

/* Everything before the argv is done: spawn QEMU, or give up (and drop
 * what the bootloader left in the run directory). */
static void prepared(void *ud, const char *seed, xn_error *err)
{
	struct prepare *p = ud;
	if (err) {
		if (p->fd >= 0)
			close(p->fd);
		xn_vm_disk_release(p->h, p->locks, NULL);
		if (p->boot) {
			XN_AUTOFREE char *run_dir = xn_asprintf(
				"%s/%s", p->h->run_dir, xn_db_str(p->h->db, p->vm, "uuid"));
			xn_rm_rf(run_dir, NULL);
			xn_pv_boot_free(p->boot);
		}
		p->done(p->ud, err);
	} else {
		dom_spawn(p->h, p->vm, p->paused, p->fd, seed, p->locks, p->boot, p->done, p->ud);
	}
	json_decref(p->locks);
	json_decref(p->vbds);
	free(p->vm);
	free(p);
}

void xn_dom_start(xn_host *h, const char *vm_ref, bool paused, int incoming_fd,
		  dom_started_fn done, void *ud)
{
	struct prepare *p = xn_calloc(1, sizeof(*p));
	*p = (struct prepare){.h = h, .vm = xn_strdup(vm_ref), .paused = paused,
			      .fd = incoming_fd, .vbds = json_array(), .locks = json_array(),
			      .done = done, .ud = ud};
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vm_ref, "VBDs"), i, v) {
		const char *vdi = xn_db_str(h->db, json_string_value(v), "VDI");
		if (!xn_db_bool(h->db, json_string_value(v), "empty") && !xn_ref_is_null(vdi) &&
		    xn_db_get(h->db, vdi))
			json_array_append(p->vbds, v);
	}
	prepare_next(p, NULL);
}

/* A start that ends before QEMU runs: nothing held stays held, nothing
 * the bootloader wrote stays behind. */
static void spawn_failed(xn_host *h, json_t *locks, json_t *vbds, const char *boot_dir,
			 dom_started_fn done, void *ud, xn_error *err)
{
	json_decref(vbds);
	xn_vm_disk_release(h, locks, NULL);
	if (boot_dir)
		xn_rm_rf(boot_dir, NULL);
	done(ud, err);
}

/* The VM record QEMU's argv is made from: with a bootloader's kernel,
 * initrd and command line in place of PV_kernel, PV_ramdisk, PV_args. */
static json_t *spawn_record(json_t *vm, const xn_pv_boot *boot)
{
	if (!boot)
		return json_incref(vm);
	json_t *r = json_deep_copy(vm);
	json_object_set_new(r, "PV_kernel", json_string(boot->kernel));
	json_object_set_new(r, "PV_ramdisk", json_string(boot->ramdisk ? boot->ramdisk : ""));
	json_object_set_new(r, "PV_args", json_string(boot->args));
	return r;
}

/* locks: taken over by the domain, released if it cannot start; boot
 * (taken over): what the bootloader put in the run directory, or NULL. */
static void dom_spawn(xn_host *h, const char *vm_ref, bool paused, int incoming_fd,
		      const char *seed, json_t *locks, xn_pv_boot *boot, dom_started_fn done,
		      void *ud)
{
	XN_AUTOCLOSE int fd = incoming_fd;
	json_t *vm = spawn_record(xn_db_get(h->db, vm_ref), boot);
	bool bootloader = boot != NULL;
	xn_pv_boot_free(boot);
	const char *uuid = json_string_value(json_object_get(vm, "uuid"));
	XN_AUTOFREE char *run_dir = xn_asprintf("%s/%s", h->run_dir, uuid);
	const char *boot_dir = bootloader ? run_dir : NULL;
	xn_error *err = NULL;
	size_t ndisks;
	json_t *nodes = NULL, *vbds = NULL;
	XN_AUTOFREE xn_qemu_disk *disks = collect_disks(h, vm, &ndisks, &nodes, &vbds);
	/* the VIFs' taps, made here and handed to QEMU as fds 4, 5, ... (3 is
	 * a resume's saved state); ours are closed once QEMU has them */
	xn_net_tap *taps = NULL;
	size_t ntaps = 0;
	bool taps_ok = xn_net_vm_taps(h, vm_ref, &taps, &ntaps, &err) == 0;
	for (size_t i = 0; taps_ok && i < ntaps; i++)
		taps_ok = xn_vif_apply_qos(h, taps[i].vif, taps[i].name, &err) == 0;
	if (!taps_ok) {
		xn_net_taps_free(taps, ntaps);
		json_decref(nodes);
		json_decref(vm);
		spawn_failed(h, locks, vbds, boot_dir, done, ud, err);
		return;
	}
	XN_AUTOFREE xn_qemu_nic *nics = xn_calloc(ntaps + 1, sizeof(*nics));
	XN_AUTOFREE xn_qemu_fd *extra = xn_calloc(ntaps + 1, sizeof(*extra));
	size_t nextra = 0;
	if (fd >= 0)
		extra[nextra++] = (xn_qemu_fd){fd, 3};
	for (size_t i = 0; i < ntaps; i++) {
		nics[i] = (xn_qemu_nic){.vif = xn_db_get(h->db, taps[i].vif), .fd = 4 + (int)i};
		extra[nextra++] = (xn_qemu_fd){taps[i].fd, 4 + (int)i};
	}
	xn_qemu_input in = {.vm = vm, .disks = disks, .ndisks = ndisks, .nics = nics,
			    .nnics = ntaps, .engine = h->engine, .run_dir = run_dir,
			    .qemu_binary = h->qemu_binary, .incoming = fd >= 0 ? "fd:3" : NULL,
			    .seed = seed};
	XN_AUTOSTRV char **argv = xn_qemu_argv(&in, &err);
	json_decref(nodes);
	json_decref(vm);
	/* the bootloader made a fresh run directory and left its files there */
	if (!argv || (!bootloader && xn_rm_rf(run_dir, &err) < 0) ||
	    xn_mkdir_p(run_dir, 0700, &err) < 0) {
		xn_net_taps_free(taps, ntaps);
		spawn_failed(h, locks, vbds, boot_dir, done, ud, err);
		return;
	}
	XN_AUTOFREE char *log = xn_asprintf("%s/qemu.log", run_dir);
	struct dom *d = xn_calloc(1, sizeof(*d));
	d->h = h;
	d->ref = xn_strdup(vm_ref);
	d->uuid = xn_strdup(uuid);
	d->run_dir = xn_strdup(run_dir);
	xn_qemu_spawn_opts o = {.argv = argv, .log_path = log, .fds = nextra ? extra : NULL,
				.nfds = nextra, .on_exit = on_proc_exit, .ud = d};
	d->proc = xn_qemu_spawn(h->loop, &o, &err);
	xn_net_taps_free(taps, ntaps);
	if (!d->proc) {
		free(d->ref);
		free(d->uuid);
		free(d->run_dir);
		free(d);
		spawn_failed(h, locks, vbds, boot_dir, done, ud, err);
		return;
	}
	d->pid = xn_qemu_proc_pid(d->proc);
	d->locks = json_incref(locks);
	xn_qemu_proc_identity(d->pid, &d->ticks, NULL);
	d->next = doms;
	doms = d;
	/* Record the pid before anything else can fail, so that a daemon
	 * that dies from here on finds this QEMU again. */
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_add(cs, xn_model_class("xn_domain"), NULL,
		       json_pack("{s:s,s:i,s:I,s:s,s:s}", "VM", vm_ref, "pid", (int)d->pid,
				 "start_ticks", (json_int_t)d->ticks, "run_dir", run_dir, "engine",
				 h->engine));
	struct start *s = xn_calloc(1, sizeof(*s));
	s->h = h;
	s->d = d;
	s->paused = paused;
	s->incoming = fd >= 0;
	s->bootloader = bootloader;
	s->done = done;
	s->ud = ud;
	s->vbds = vbds;
	d->starting = s;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		start_finish(s, err);
		return;
	}
	xn_info("vm %s: QEMU started (pid %d, %s)", uuid, (int)d->pid, h->engine);
	d->starting = s;
	connect_qmp(d);
}

/* ---- what happens after an exit nobody asked for ---------------------- */

struct restart {
	xn_host *h;
	char *ref;
};

static void restarted(void *ud, xn_error *err)
{
	struct restart *r = ud;
	if (err) {
		xn_warn("vm %s: automatic restart failed: %s", r->ref, err->message);
		xn_error_free(err);
	}
	free(r->ref);
	free(r);
}

/* Restart a VM unless it keeps dying: at most 5 restarts a minute
 * after crashes (reboots the guest asks for are not limited). */
static void auto_restart(xn_host *h, const char *ref, bool crashed)
{
	static struct {
		char ref[64];
		uint64_t since;
		int n;
	} hist[64];
	uint64_t now = xn_now_ms();
	size_t slot = 0;
	for (size_t i = 0; i < XN_ARRAY_LEN(hist); i++) {
		if (strcmp(hist[i].ref, ref) == 0) {
			slot = i;
			break;
		}
		if (hist[i].since < hist[slot].since)
			slot = i;
	}
	if (strcmp(hist[slot].ref, ref) != 0 || now - hist[slot].since > 60000) {
		snprintf(hist[slot].ref, sizeof(hist[slot].ref), "%s", ref);
		hist[slot].since = now;
		hist[slot].n = 0;
	}
	if (crashed && ++hist[slot].n > 5) {
		xn_warn("vm %s: restarted too often; leaving it halted", ref);
		return;
	}
	struct restart *r = xn_calloc(1, sizeof(*r));
	r->h = h;
	r->ref = xn_strdup(ref);
	xn_dom_start(h, ref, false, -1, restarted, r);
}

static void after_exit_policy(struct dom *d)
{
	if (d->restart_after) {
		if (d->gone)
			auto_restart(d->h, d->ref, true);
		return;
	}
	if (d->expected)
		return;
	xn_host *h = d->h;
	const char *field = "actions_after_crash";
	if (!d->panicked && xn_streq(d->shutdown_reason, "guest-shutdown"))
		field = "actions_after_shutdown";
	else if (!d->panicked && xn_streq(d->shutdown_reason, "guest-reset"))
		field = "actions_after_reboot";
	else if (!d->panicked && d->shutdown_reason)
		return; /* host-initiated (quit, signal): stays halted */
	const char *action = xn_db_str(h->db, d->ref, field);
	xn_info("vm %s: %s: %s", d->uuid, field, action);
	if (d->panicked) {
		if (strcmp(action, "preserve") == 0)
			return; /* QEMU stays paused for inspection */
		d->restart_after = strstr(action, "restart") != NULL;
		d->expected = true;
		xn_qemu_proc_kill(d->pid, NULL);
		return;
	}
	if (strstr(action, "restart"))
		auto_restart(h, d->ref, strcmp(field, "actions_after_crash") == 0);
}

/* ---- daemon start and stop ------------------------------------------- */

/* Re-attach to a QEMU the previous daemon started. */
static void reattach(xn_host *h, const char *vm_ref, pid_t pid, uint64_t ticks,
		     const char *run_dir)
{
	struct dom *d = xn_calloc(1, sizeof(*d));
	d->h = h;
	d->ref = xn_strdup(vm_ref);
	d->uuid = xn_strdup(xn_db_str(h->db, vm_ref, "uuid"));
	d->run_dir = xn_strdup(run_dir);
	d->pid = pid;
	d->ticks = ticks;
	d->locks = recorded_locks(h, vm_ref, false);
	d->next = doms;
	doms = d;
	connect_qmp(d);
	xn_console_attach(h, vm_ref, NULL);
	xn_vm_guest_attach(d);
	xn_info("vm %s: re-attached to QEMU pid %d", d->uuid, (int)pid);
}

/* Kill QEMUs running from our run directory that no domain record
 * claims (a start the previous daemon did not get to record). */
static void kill_strays(xn_host *h, json_t *claimed)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		return;
	XN_AUTOFREE char *needle = xn_asprintf("%s/", h->run_dir);
	for (struct dirent *e; (e = readdir(proc));) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		XN_AUTOFREE char *path = xn_asprintf("/proc/%d/cmdline", (int)pid);
		size_t len = 0;
		XN_AUTOFREE char *cmd = xn_read_file(path, &len, NULL);
		if (!cmd || !xn_proc_cmdline_has(cmd, len, needle) ||
		    !xn_proc_cmdline_has(cmd, len, "-pidfile"))
			continue;
		XN_AUTOFREE char *key = xn_asprintf("%d", (int)pid);
		if (json_object_get(claimed, key))
			continue;
		xn_warn("vm: killing stray QEMU pid %d (no VM record claims it)", (int)pid);
		xn_qemu_proc_kill(pid, NULL);
	}
	closedir(proc);
}

/* Bring the records in line with the QEMUs that actually run. */
static int reconcile(xn_host *h, xn_error **err)
{
	xn_changes *cs = xn_changes_new(h->db);
	json_t *claimed = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("xn_domain")), k, v) {
		const char *vm = json_string_value(json_object_get(v, "VM"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
		uint64_t ticks = (uint64_t)json_integer_value(json_object_get(v, "start_ticks"));
		const char *ps = xn_db_str(h->db, vm, "power_state");
		const char *uuid = xn_db_str(h->db, vm, "uuid");
		bool alive = pid > 0 && xn_qemu_proc_is(pid, ticks, uuid);
		bool should_run = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
		if (alive && should_run) {
			XN_AUTOFREE char *key = xn_asprintf("%d", (int)pid);
			json_object_set_new(claimed, key, json_true());
			reattach(h, vm, pid, ticks, json_string_value(json_object_get(v, "run_dir")));
			continue;
		}
		if (alive) {
			/* A start that never finished, or a stop (suspend,
			 * shutdown) that was recorded but not carried out. */
			xn_warn("vm %s: QEMU pid %d runs but the VM is %s: stopping it", uuid,
				(int)pid, ps);
			xn_qemu_proc_kill(pid, NULL);
		} else if (should_run) {
			xn_warn("vm %s: its QEMU is gone: the VM is halted", uuid);
		}
		xn_rm_rf(json_string_value(json_object_get(v, "run_dir")), NULL);
		json_t *locks = recorded_locks(h, vm, true);
		xn_vm_disk_release(h, locks, NULL);
		json_decref(locks);
		record_halted(h, cs, vm, true);
		xn_changes_delete(cs, k);
	}
	kill_strays(h, claimed);
	json_decref(claimed);
	/* A VM recorded as running with no domain record at all. */
	json_object_foreach(xn_db_all(h->db, xn_model_class("VM")), k, v) {
		const char *ps = json_string_value(json_object_get(v, "power_state"));
		bool runs = xn_streq(ps, "Running") || xn_streq(ps, "Paused");
		if (runs && !json_is_true(json_object_get(v, "is_control_domain")) &&
		    !domain_record_of(h, k))
			record_halted(h, cs, k, true);
	}
	/* Operations the previous daemon was running are over. */
	json_object_foreach(xn_db_all(h->db, xn_model_class("VM")), k, v) {
		if (json_object_size(json_object_get(v, "current_operations")) == 0)
			continue;
		xn_changes_set(cs, k, "current_operations", json_object());
		xn_vm_refresh_allowed(cs, k);
	}
	json_object_foreach(xn_db_all(h->db, xn_model_class("task")), k, v) {
		if (!xn_streq(json_string_value(json_object_get(v, "status")), "pending"))
			continue;
		json_t *t = xn_changes_edit(cs, k);
		json_object_set_new(t, "status", json_string("failure"));
		json_object_set_new(t, "error_info", json_pack("[s,s]", "INTERNAL_ERROR",
							       "interrupted by a daemon restart"));
		json_object_set_new(t, "finished", xn_datetime_now());
	}
	json_object_foreach(xn_db_all(h->db, xn_model_class("VM")), k, v)
		xn_vm_refresh_allowed(cs, k);
	/* No disk of a VM that does not run is attached (records from before
	 * currently_attached was kept, or from a crash mid-way). */
	json_object_foreach(xn_db_all(h->db, xn_model_class("VBD")), k, v) {
		const char *vm = json_string_value(json_object_get(v, "VM"));
		const char *ps = xn_db_str(h->db, vm, "power_state");
		bool runs = (xn_streq(ps, "Running") || xn_streq(ps, "Paused")) &&
			    domain_record_of(h, vm);
		if (json_is_true(json_object_get(v, "currently_attached")) && !runs)
			xn_changes_set(cs, k, "currently_attached", json_false());
	}
	return xn_db_commit(h->db, cs, err);
}

int xn_vms_init(xn_host *h, xn_error **err)
{
	if (xn_mkdir_p(h->run_dir, 0700, err) < 0 || reconcile(h, err) < 0)
		return -1;
	xn_vm_resources_init(h);
	return 0;
}

void xn_vms_detach_all(xn_host *h)
{
	(void)h;
	for (struct dom *d = doms; d; d = d->next) {
		d->gone = true; /* no exit handling from here on */
		if (d->qmp)
			xn_qmp_close(d->qmp);
		d->qmp = NULL;
		xn_vm_guest_detach(d);
		if (d->proc)
			xn_qemu_proc_release(d->proc);
		d->proc = NULL;
		if (d->poll)
			uv_close((uv_handle_t *)d->poll, (uv_close_cb)free);
		d->poll = NULL;
	}
}
