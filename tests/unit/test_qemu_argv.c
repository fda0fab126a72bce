/* Tests of the QEMU side of the engine that need no QMP session of their
 * own: the argv golden files (tests/golden/argv/<case>/), the pure
 * helpers of qemu_proc (engine detection, /proc parsing), spawning and
 * identifying a real process, and one real QEMU started from a generated
 * argv, checked over QMP to sit in "prelaunch".
 *
 * Golden cases: input.json holds {"vm", "disks": [{"vbd", "vdi", "node",
 * "format"}], "engine", "run_dir", "incoming"}; records are merged over
 * the datamodel's defaults. expected.argv has one argument per line (no
 * argument may hold a newline); error cases have expected.error instead:
 * the code, then one parameter per line.
 * XN_UPDATE_GOLDEN=1 rewrites the expected files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "uvwait.h"
#include "engine/qemu_argv.h"
#include "engine/qemu_proc.h"
#include "engine/qmp.h"
#include "engine/qmp_commands.h"
#include "model/model.h"
#include "util/fs.h"

/* ---- golden files ---- */

/* tests/golden/argv, found from the source path (run from the top of the
 * tree) or from the binary's place in build/asan/tests/. */
static char *golden_dir(void)
{
	XN_AUTOFREE char *src = xn_strdup(__FILE__);
	char *d = xn_asprintf("%s/../golden/argv", dirname(src));
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (xn_path_exists(d) || n <= 0)
		return d;
	free(d);
	exe[n] = '\0';
	return xn_asprintf("%s/../../../tests/golden/argv", dirname(exe));
}

static json_t *record(const char *cls, json_t *over)
{
	if (json_is_null(over) || !over)
		return NULL;
	json_t *r = xn_record_new(xn_model_class(cls));
	json_object_update(r, over);
	return r;
}

/* The argv, or the error as text (*is_err set), of one case's input. */
static char *run_case(json_t *input, bool *is_err)
{
	json_t *jdisks = json_object_get(input, "disks");
	size_t n = json_array_size(jdisks);
	xn_qemu_disk *disks = xn_calloc(n ? n : 1, sizeof(*disks));
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(jdisks, i);
		disks[i].vbd = record("VBD", json_object_get(d, "vbd"));
		disks[i].vdi = record("VDI", json_object_get(d, "vdi"));
		json_t *node = json_object_get(d, "node");
		disks[i].node = json_is_null(node) ? NULL : node;
		disks[i].format = json_string_value(json_object_get(d, "format"));
	}
	json_t *jnics = json_object_get(input, "nics");
	size_t nn = json_array_size(jnics);
	xn_qemu_nic *nics = xn_calloc(nn ? nn : 1, sizeof(*nics));
	for (size_t i = 0; i < nn; i++) {
		json_t *x = json_array_get(jnics, i);
		nics[i].vif = record("VIF", json_object_get(x, "vif"));
		nics[i].fd = (int)json_integer_value(json_object_get(x, "fd"));
	}
	const char *bin = json_string_value(json_object_get(input, "qemu_binary"));
	xn_qemu_input in = {
		.vm = record("VM", json_object_get(input, "vm")),
		.disks = disks,
		.ndisks = n,
		.nics = nics,
		.nnics = nn,
		.engine = json_string_value(json_object_get(input, "engine")),
		.run_dir = json_string_value(json_object_get(input, "run_dir")),
		.qemu_binary = bin ? bin : "qemu-system-x86_64",
		.incoming = json_string_value(json_object_get(input, "incoming")),
		.seed = json_string_value(json_object_get(input, "seed")),
	};
	XN_AUTOERR xn_error *err = NULL;
	XN_AUTOSTRV char **argv = xn_qemu_argv(&in, &err);
	xn_buf out = {0};
	*is_err = !argv;
	if (!argv) {
		CHECK(err != NULL);
		xn_buf_printf(&out, "%s\n", err ? err->code : "(no error)");
		for (size_t i = 0; err && err->params[i]; i++)
			xn_buf_printf(&out, "%s\n", err->params[i]);
	}
	for (size_t i = 0; argv && argv[i]; i++) {
		CHECK(!strchr(argv[i], '\n'));
		xn_buf_printf(&out, "%s\n", argv[i]);
	}
	/* name_label is a user string: it must never reach QEMU. */
	const char *label = json_string_value(json_object_get(in.vm, "name_label"));
	if (label && strlen(label) >= 6 && out.data && strstr(out.data, label)) {
		fprintf(stderr, "  name_label '%s' appears in the argv\n", label);
		CHECK(!"name_label in argv");
	}
	for (size_t i = 0; i < n; i++) {
		json_decref(disks[i].vbd);
		json_decref(disks[i].vdi);
	}
	free(disks);
	for (size_t i = 0; i < nn; i++)
		json_decref(nics[i].vif);
	free(nics);
	json_decref(in.vm);
	return xn_buf_steal(&out);
}

static void report_diff(const char *name, const char *got, const char *want)
{
	int line = 1;
	const char *g = got, *w = want;
	while (*g && *g == *w) {
		line += *g == '\n';
		g++, w++;
	}
	fprintf(stderr, "  case %s differs at line %d:\n    got:  %.*s\n    want: %.*s\n", name,
		line, (int)strcspn(g, "\n"), g, (int)strcspn(w, "\n"), w);
}

static void check_case(const char *dir, const char *name)
{
	XN_AUTOFREE char *in_path = xn_asprintf("%s/%s/input.json", dir, name);
	json_error_t jerr;
	json_t *input = json_load_file(in_path, 0, &jerr);
	if (!input) {
		fprintf(stderr, "  %s: %s\n", in_path, jerr.text);
		CHECK(!"bad input.json");
		return;
	}
	bool is_err;
	XN_AUTOFREE char *got = run_case(input, &is_err);
	json_decref(input);
	XN_AUTOFREE char *argv_path = xn_asprintf("%s/%s/expected.argv", dir, name);
	XN_AUTOFREE char *err_path = xn_asprintf("%s/%s/expected.error", dir, name);
	const char *path = is_err ? err_path : argv_path;
	if (getenv("XN_UPDATE_GOLDEN")) {
		unlink(is_err ? argv_path : err_path);
		CHECK(xn_write_file_atomic(path, got, strlen(got), 0644, NULL) == 0);
		return;
	}
	XN_AUTOFREE char *want = xn_read_file(path, NULL, NULL);
	if (!want || strcmp(got, want) != 0) {
		if (!want)
			fprintf(stderr, "  case %s: no %s\n", name, path);
		else
			report_diff(name, got, want);
		CHECK(!"golden mismatch");
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(test_golden_argv)
{
	XN_AUTOFREE char *dir = golden_dir();
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	XN_AUTOSTRV char **names = xn_strv_new();
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			xn_strv_push(&names, e->d_name);
	closedir(d);
	qsort(names, xn_strv_len(names), sizeof(char *), by_name);
	CHECK(xn_strv_len(names) >= 10);
	for (size_t i = 0; names[i]; i++)
		check_case(dir, names[i]);
}

TEST(test_opt_escape)
{
	XN_AUTOFREE char *a = xn_qemu_opt_escape("/run/a,b,,c");
	CHECK_STR(a, "/run/a,,b,,,,c");
	XN_AUTOFREE char *b = xn_qemu_opt_escape("");
	CHECK_STR(b, "");
}

/* ---- qemu_proc: pure helpers ---- */

TEST(test_cpuinfo_hw_virt)
{
	CHECK(xn_cpuinfo_has_hw_virt("processor\t: 0\nflags\t\t: fpu vme vmx sse2\n"));
	CHECK(xn_cpuinfo_has_hw_virt("processor\t: 0\nflags\t\t: fpu svm\nbugs\t: x\n"));
	CHECK(xn_cpuinfo_has_hw_virt("flags : vmx"));
	CHECK(!xn_cpuinfo_has_hw_virt("processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\n"));
	CHECK(!xn_cpuinfo_has_hw_virt("flags\t\t: fpu vmxe svmx\n"));
	CHECK(!xn_cpuinfo_has_hw_virt("model name\t: vmx svm\nflags\t\t: fpu\n"));
	CHECK(!xn_cpuinfo_has_hw_virt("vmx flags\t: vmx\n"));
	CHECK(!xn_cpuinfo_has_hw_virt(""));
	const char *e = xn_engine_detect();
	CHECK(xn_streq(e, "kvm") || xn_streq(e, "tcg"));
}

TEST(test_proc_stat_parse)
{
	uint64_t t = 0;
	/* Fields 3..21 are 19 values; the 22nd is the start time. */
	const char *stat = "4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 "
			   "20 0 9 0 123456789 1000 200 18446744073709551615\n";
	CHECK(xn_proc_stat_start_ticks(stat, &t) == 0 && t == 123456789);
	const char *odd = "7 (a) b (c) d) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 1 2\n";
	CHECK(xn_proc_stat_start_ticks(odd, &t) == 0 && t == 55);
	CHECK(xn_proc_stat_start_ticks("7 (a) R 1 2 3", &t) < 0);
	CHECK(xn_proc_stat_start_ticks("no parenthesis", &t) < 0);
	const char cmd[] = "qemu\0-name\0guest=abc,debug-threads=on\0";
	CHECK(xn_proc_cmdline_has(cmd, sizeof(cmd) - 1, "abc"));
	CHECK(!xn_proc_cmdline_has(cmd, sizeof(cmd) - 1, "-nameguest"));
	CHECK(!xn_proc_cmdline_has(cmd, sizeof(cmd) - 1, "xyz"));
}

/* ---- qemu_proc: real processes ---- */

static char tmp[] = "/tmp/xn-test-argv-XXXXXX";

typedef struct child {
	bool exited;
	int64_t status;
	int sig;
} child;

static void on_exit_cb(void *ud, int64_t status, int sig)
{
	child *c = ud;
	c->exited = true;
	c->status = status;
	c->sig = sig;
}

TEST(test_spawn_log_fds_exit)
{
	XN_AUTOFREE char *state = xn_asprintf("%s/state", tmp);
	XN_AUTOFREE char *log = xn_asprintf("%s/qemu.log", tmp);
	CHECK(xn_write_file_atomic(state, "STATE-BYTES", 11, 0600, NULL) == 0);
	CHECK(xn_write_file_atomic(log, "earlier\n", 8, 0600, NULL) == 0);
	XN_AUTOCLOSE int fd = open(state, O_RDONLY | O_CLOEXEC);
	char *argv[] = {"sh", "-c",
			"readlink /proc/self/fd/0; echo to-stderr >&2; cat <&5; echo; "
			"ps -o sid= -p $$ | tr -d ' '; echo $$; exit 7", NULL};
	xn_qemu_fd fds[] = {{fd, 5}};
	child c = {0};
	xn_qemu_spawn_opts o = {.argv = argv, .log_path = log, .fds = fds, .nfds = 1,
				.on_exit = on_exit_cb, .ud = &c};
	XN_AUTOERR xn_error *err = NULL;
	xn_qemu_proc *p = xn_qemu_spawn(&loop, &o, &err);
	CHECK(p != NULL);
	if (!p)
		return;
	pid_t pid = xn_qemu_proc_pid(p);
	wait_for(&c.exited, 5000);
	CHECK(c.status == 7 && c.sig == 0);
	XN_AUTOFREE char *out = xn_read_file(log, NULL, NULL);
	XN_AUTOFREE char *want = xn_asprintf("earlier\n/dev/null\nto-stderr\nSTATE-BYTES\n%d\n%d\n",
					     (int)pid, (int)pid);
	/* Appended, stdin /dev/null, fd 5 inherited, its own session. */
	CHECK_STR(out, want);
}

TEST(test_spawn_failure)
{
	char *argv[] = {"/nonexistent/qemu", NULL};
	XN_AUTOFREE char *log = xn_asprintf("%s/fail.log", tmp);
	xn_qemu_spawn_opts o = {.argv = argv, .log_path = log};
	XN_AUTOERR xn_error *err = NULL;
	CHECK(xn_qemu_spawn(&loop, &o, &err) == NULL);
	CHECK(err && strstr(err->message, "/nonexistent/qemu"));
	xn_errorp_free(&err);
	XN_AUTOFREE char *badlog = xn_asprintf("%s/no/such/dir/log", tmp);
	o.log_path = badlog;
	CHECK(xn_qemu_spawn(&loop, &o, &err) == NULL && err);
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* Released, the child keeps running and the loop has nothing to wait
 * for: what lets the daemon exit while its VMs run on. */
TEST(test_release_identity_kill)
{
	char *argv[] = {"sleep", "30", "5f0c6a3e-1b2d-4c8e-9f10-2a3b4c5d6e7f", NULL};
	XN_AUTOFREE char *log = xn_asprintf("%s/sleep.log", tmp);
	child c = {0};
	xn_qemu_spawn_opts o = {.argv = argv, .log_path = log, .on_exit = on_exit_cb, .ud = &c};
	argv[2] = NULL; /* sleep takes one argument; the uuid is checked below */
	xn_qemu_proc *p = xn_qemu_spawn(&loop, &o, NULL);
	CHECK(p != NULL);
	if (!p)
		return;
	pid_t pid = xn_qemu_proc_pid(p);
	uint64_t ticks = 0;
	CHECK(xn_qemu_proc_identity(pid, &ticks, NULL) == 0 && ticks > 0);
	CHECK(xn_qemu_proc_is(pid, ticks, "sleep"));
	CHECK(!xn_qemu_proc_is(pid, ticks + 1, "sleep"));
	CHECK(!xn_qemu_proc_is(pid, ticks, "5f0c6a3e-1b2d-4c8e-9f10-2a3b4c5d6e7f"));
	CHECK(getsid(pid) == pid);
	xn_qemu_proc_release(p);
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	CHECK(!c.exited && kill(pid, 0) == 0);
	CHECK(xn_qemu_proc_kill(pid, NULL) == 0);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK(!xn_qemu_proc_is(pid, ticks, "sleep"));
	CHECK(xn_qemu_proc_kill(pid, NULL) == 0); /* already gone */
	XN_AUTOERR xn_error *err = NULL;
	CHECK(xn_qemu_proc_identity(pid, &ticks, &err) < 0 && err);
}

/* ---- a generated argv starts a real QEMU ---- */

typedef struct boot {
	bool ready, status_done, closed;
	char *status;
	child proc;
} boot;

static void boot_ready(void *ud, const xn_error *err)
{
	boot *b = ud;
	b->ready = true;
	if (err)
		fprintf(stderr, "  %s\n", err->message);
	CHECK(err == NULL);
}

static void boot_closed(void *ud)
{
	((boot *)ud)->closed = true;
}

static void boot_status(void *ud, const char *status, bool running, const xn_error *err)
{
	boot *b = ud;
	b->status_done = true;
	b->status = xn_strdup(status);
}

static char **minimal_argv(const char *run_dir)
{
	XN_AUTOFREE char *gd = golden_dir();
	XN_AUTOFREE char *path = xn_asprintf("%s/hvm-minimal/input.json", gd);
	json_t *input = json_load_file(path, 0, NULL);
	CHECK(input != NULL);
	json_t *vm = record("VM", json_object_get(input, "vm"));
	xn_qemu_input in = {.vm = vm, .engine = "tcg", .run_dir = run_dir,
			    .qemu_binary = "qemu-system-x86_64"};
	char **argv = xn_qemu_argv(&in, NULL);
	json_decref(vm);
	json_decref(input);
	return argv;
}

TEST(test_real_qemu_prelaunch)
{
	XN_AUTOFREE char *run_dir = xn_asprintf("%s/vm", tmp);
	CHECK(xn_mkdir_p(run_dir, 0700, NULL) == 0);
	XN_AUTOSTRV char **argv = minimal_argv(run_dir);
	CHECK(argv != NULL);
	if (!argv)
		return;
	boot b = {0};
	XN_AUTOFREE char *log = xn_asprintf("%s/qemu.log", run_dir);
	xn_qemu_spawn_opts o = {.argv = argv, .log_path = log, .on_exit = on_exit_cb, .ud = &b.proc};
	XN_AUTOERR xn_error *err = NULL;
	xn_qemu_proc *p = xn_qemu_spawn(&loop, &o, &err);
	CHECK(p != NULL);
	if (!p)
		return;
	XN_AUTOFREE char *sock = xn_asprintf("%s/qmp.sock", run_dir);
	struct xn_qmp_callbacks cb = {.ready = boot_ready, .closed = boot_closed, .ud = &b};
	xn_qmp *q = xn_qmp_connect(&loop, sock, 10000, &cb);
	xn_qmp_query_status(q, boot_status, &b);
	wait_for(&b.status_done, 10000);
	CHECK_STR(b.status, "prelaunch");
	/* The pidfile, the recorded identity and the uuid in the cmdline. */
	XN_AUTOFREE char *pidfile = xn_asprintf("%s/qemu.pid", run_dir);
	XN_AUTOFREE char *pidtext = xn_read_file(pidfile, NULL, NULL);
	CHECK(pidtext && atoi(pidtext) == xn_qemu_proc_pid(p));
	uint64_t ticks = 0;
	CHECK(xn_qemu_proc_identity(xn_qemu_proc_pid(p), &ticks, NULL) == 0);
	CHECK(xn_qemu_proc_is(xn_qemu_proc_pid(p), ticks, "5f0c6a3e-1b2d-4c8e-9f10-2a3b4c5d6e7f"));
	xn_qmp_quit(q, NULL, NULL);
	wait_for(&b.closed, 5000);
	wait_for(&b.proc.exited, 5000);
	CHECK(b.proc.status == 0 && b.proc.sig == 0);
	if (!b.proc.exited)
		xn_qemu_proc_kill(xn_qemu_proc_pid(p), NULL);
	xn_qmp_close(q);
	uv_run(&loop, UV_RUN_NOWAIT);
	free(b.status);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	xn_model_init();
	uv_loop_init(&loop);
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_golden_argv);
	RUN(test_opt_escape);
	RUN(test_cpuinfo_hw_virt);
	RUN(test_proc_stat_parse);
	RUN(test_spawn_log_fds_exit);
	RUN(test_spawn_failure);
	RUN(test_release_identity_kill);
	RUN(test_real_qemu_prelaunch);
	xn_rm_rf(tmp, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(uv_loop_close(&loop) == 0);
	CHECK_EXIT();
}
