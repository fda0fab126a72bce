/* qemu_proc.c: engine detection, spawning QEMU detached, and finding it
 * again by pid and start time (qemu_proc.h).
 *
 * Lifetime of the libuv process handle: while the daemon runs, the
 * handle stays active, so libuv reaps the child and reports its exit.
 * uv_unref would be wrong: the handle would still be open when the loop
 * is torn down, and the exit of a VM that outlives a loop iteration must
 * still be seen. At daemon shutdown the daemon releases the handle
 * (uv_close without killing), which lets the loop end while QEMU, in its
 * own session, keeps running and is re-parented to init. */
#include "engine/qemu_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"

struct xn_qemu_proc {
	uv_process_t handle;
	xn_qemu_exit_fn on_exit;
	void *ud;
	bool exited;
};

/* ---- engine ---- */

static bool has_word(const char *s, size_t len, const char *word)
{
	size_t wl = strlen(word);
	for (size_t i = 0; i + wl <= len; i++) {
		bool start = i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t';
		bool end = i + wl == len || s[i + wl] == ' ' || s[i + wl] == '\t';
		if (start && end && memcmp(s + i, word, wl) == 0)
			return true;
	}
	return false;
}

bool xn_cpuinfo_has_hw_virt(const char *cpuinfo)
{
	for (const char *line = cpuinfo; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *colon = memchr(line, ':', len);
		if (colon && strncmp(line, "flags", 5) == 0 &&
		    strspn(line + 5, " \t") == (size_t)(colon - line - 5)) {
			const char *v = colon + 1;
			size_t vl = len - (size_t)(v - line);
			if (has_word(v, vl, "vmx") || has_word(v, vl, "svm"))
				return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

const char *xn_engine_detect(void)
{
	XN_AUTOFREE char *cpuinfo = xn_read_file("/proc/cpuinfo", NULL, NULL);
	if (!cpuinfo || !xn_cpuinfo_has_hw_virt(cpuinfo))
		return "tcg";
	XN_AUTOCLOSE int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	return fd >= 0 ? "kvm" : "tcg";
}

/* ---- spawn ---- */

static void on_handle_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_process_exit(uv_process_t *h, int64_t exit_status, int term_signal)
{
	xn_qemu_proc *p = h->data;
	p->exited = true;
	if (p->on_exit)
		p->on_exit(p->ud, exit_status, term_signal);
	uv_close((uv_handle_t *)h, on_handle_closed);
}

/* stdio[i] is what the child gets as fd i: /dev/null, the log, extras. */
static uv_stdio_container_t *make_stdio(const xn_qemu_spawn_opts *o, int log_fd, int *count)
{
	int n = 3;
	for (size_t i = 0; i < o->nfds; i++)
		if (o->fds[i].child_fd + 1 > n)
			n = o->fds[i].child_fd + 1;
	uv_stdio_container_t *st = xn_calloc((size_t)n, sizeof(*st));
	for (int i = 0; i < n; i++)
		st[i].flags = UV_IGNORE; /* fds 0-2: /dev/null; others: closed */
	st[1].flags = st[2].flags = UV_INHERIT_FD;
	st[1].data.fd = st[2].data.fd = log_fd;
	for (size_t i = 0; i < o->nfds; i++) {
		st[o->fds[i].child_fd].flags = UV_INHERIT_FD;
		st[o->fds[i].child_fd].data.fd = o->fds[i].fd;
	}
	*count = n;
	return st;
}

static int check_fds(const xn_qemu_spawn_opts *o, xn_error **err)
{
	for (size_t i = 0; i < o->nfds; i++)
		if (o->fds[i].child_fd < 3 || o->fds[i].child_fd > 255 || o->fds[i].fd < 0)
			return xn_fail_internal(err, "cannot pass fd %d to QEMU as fd %d",
						o->fds[i].fd, o->fds[i].child_fd);
	return 0;
}

xn_qemu_proc *xn_qemu_spawn(uv_loop_t *loop, const xn_qemu_spawn_opts *o, xn_error **err)
{
	if (!o->argv || !o->argv[0] || check_fds(o, err) < 0) {
		if (!o->argv || !o->argv[0])
			xn_fail_internal(err, "no QEMU command line");
		return NULL;
	}
	XN_AUTOCLOSE int log_fd = open(o->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (log_fd < 0) {
		xn_fail_errno(err, errno, "cannot open '%s'", o->log_path);
		return NULL;
	}
	int nstdio;
	XN_AUTOFREE uv_stdio_container_t *stdio = make_stdio(o, log_fd, &nstdio);
	uv_process_options_t uo = {
		.exit_cb = on_process_exit,
		.file = o->argv[0],
		.args = (char **)o->argv,
		.cwd = "/",
		.flags = UV_PROCESS_DETACHED,
		.stdio_count = nstdio,
		.stdio = stdio,
	};
	xn_qemu_proc *p = xn_calloc(1, sizeof(*p));
	p->on_exit = o->on_exit;
	p->ud = o->ud;
	p->handle.data = p;
	int r = uv_spawn(loop, &p->handle, &uo);
	if (r < 0) {
		xn_fail_internal(err, "cannot start '%s': %s", o->argv[0], uv_strerror(r));
		/* libuv initialised the handle even on failure: close it. */
		uv_close((uv_handle_t *)&p->handle, on_handle_closed);
		return NULL;
	}
	xn_debug("engine: started '%s' as pid %d", o->argv[0], p->handle.pid);
	return p;
}

pid_t xn_qemu_proc_pid(const xn_qemu_proc *p)
{
	return p->handle.pid;
}

void xn_qemu_proc_release(xn_qemu_proc *p)
{
	if (!p || p->exited)
		return;
	p->on_exit = NULL;
	uv_close((uv_handle_t *)&p->handle, on_handle_closed);
}

/* ---- identity ---- */

int xn_proc_stat_start_ticks(const char *stat, uint64_t *start_ticks)
{
	/* "pid (comm) state ppid ...": comm may hold anything, so fields
	 * are counted from the last ')'. Field 3 (state) follows it. */
	const char *p = strrchr(stat, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 22; field++) {
		p += strspn(p, " ");
		p += strcspn(p, " ");
		if (!*p)
			return -1;
	}
	p += strspn(p, " ");
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (end == p || errno || (*end && *end != ' ' && *end != '\n'))
		return -1;
	*start_ticks = v;
	return 0;
}

bool xn_proc_cmdline_has(const char *cmdline, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	for (size_t i = 0; i < len;) {
		size_t al = strnlen(cmdline + i, len - i);
		if (nl <= al && memmem(cmdline + i, al, needle, nl))
			return true;
		i += al + 1;
	}
	return false;
}

int xn_qemu_proc_identity(pid_t pid, uint64_t *start_ticks, xn_error **err)
{
	XN_AUTOFREE char *path = xn_asprintf("/proc/%d/stat", (int)pid);
	XN_AUTOFREE char *stat = xn_read_file(path, NULL, err);
	if (!stat)
		return -1;
	if (xn_proc_stat_start_ticks(stat, start_ticks) < 0)
		return xn_fail_internal(err, "cannot parse '%s'", path);
	return 0;
}

bool xn_qemu_proc_is(pid_t pid, uint64_t start_ticks, const char *vm_uuid)
{
	uint64_t ticks;
	if (pid <= 0 || xn_qemu_proc_identity(pid, &ticks, NULL) < 0 || ticks != start_ticks)
		return false;
	XN_AUTOFREE char *path = xn_asprintf("/proc/%d/cmdline", (int)pid);
	size_t len;
	XN_AUTOFREE char *cmdline = xn_read_file(path, &len, NULL);
	return cmdline && xn_proc_cmdline_has(cmdline, len, vm_uuid);
}

/* ---- vCPU threads ---- */

int xn_qemu_vcpu_index(const char *comm)
{
	if (strncmp(comm, "CPU ", 4) != 0 || comm[4] < '0' || comm[4] > '9')
		return -1;
	char *end;
	errno = 0;
	long i = strtol(comm + 4, &end, 10);
	if (errno || i > 4095 || (strncmp(end, "/TCG", 4) != 0 && strncmp(end, "/KVM", 4) != 0) ||
	    (end[4] && strcmp(end + 4, "\n") != 0))
		return -1;
	return (int)i;
}

int xn_qemu_vcpu_tids(pid_t qemu_pid, pid_t *tids, int max)
{
	XN_AUTOFREE char *dir = xn_asprintf("/proc/%d/task", (int)qemu_pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	for (int i = 0; i < max; i++)
		tids[i] = 0;
	for (struct dirent *e; (e = readdir(d));) {
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid <= 0)
			continue;
		XN_AUTOFREE char *path = xn_asprintf("%s/%d/comm", dir, (int)tid);
		XN_AUTOFREE char *comm = xn_read_file(path, NULL, NULL);
		int i = comm ? xn_qemu_vcpu_index(comm) : -1;
		if (i < 0 || i >= max)
			continue;
		tids[i] = tid;
		if (i + 1 > n)
			n = i + 1;
	}
	closedir(d);
	return n;
}

int xn_qemu_proc_kill(pid_t pid, xn_error **err)
{
	if (pid <= 0)
		return xn_fail_internal(err, "refusing to kill pid %d", (int)pid);
	if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
		return xn_fail_errno(err, errno, "cannot kill pid %d", (int)pid);
	return 0;
}
