/* proc.c: child processes with captured output (proc.h). */
#include "util/proc.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
	uv_process_t proc;
	uv_pipe_t out;
	xn_buf buf;
	int status;
	int pending;      /* handles still to close */
	bool exited, eof;
	xn_run_done done;
	void *ud;
};

static void finish(struct run *r)
{
	if (--r->pending > 0)
		return;
	r->done(r->ud, r->status, r->buf.data ? r->buf.data : "");
	xn_buf_reset(&r->buf);
	free(r);
}

static void on_close(uv_handle_t *h)
{
	finish(h->data);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct run *r = p->data;
	r->status = sig ? -sig : (int)status;
	uv_close((uv_handle_t *)p, on_close);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	b->base = xn_malloc(16384);
	b->len = 16384;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct run *r = s->data;
	if (n > 0 && r->buf.len < (1u << 20))
		xn_buf_append(&r->buf, b->base, (size_t)n);
	free(b->base);
	if (n < 0)
		uv_close((uv_handle_t *)s, on_close);
}

int xn_run(uv_loop_t *loop, char *const *argv, xn_run_done done, void *ud, xn_error **err)
{
	struct run *r = xn_calloc(1, sizeof(*r));
	r->done = done;
	r->ud = ud;
	/* One pipe for both stdout and stderr, so messages keep their order. */
	uv_file fds[2];
	int prc = uv_pipe(fds, 0, 0);
	if (prc < 0) {
		free(r);
		return xn_fail_internal(err, "cannot run '%s': %s", argv[0], uv_strerror(prc));
	}
	uv_pipe_init(loop, &r->out, 0);
	r->out.data = r;
	uv_pipe_open(&r->out, fds[0]);
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_IGNORE},
		{.flags = UV_INHERIT_FD, .data.fd = fds[1]},
		{.flags = UV_INHERIT_FD, .data.fd = fds[1]},
	};
	uv_process_options_t o = {
		.file = argv[0],
		.args = (char **)argv,
		.exit_cb = on_exit_cb,
		.stdio_count = 3,
		.stdio = stdio,
	};
	r->proc.data = r;
	int rc = uv_spawn(loop, &r->proc, &o);
	close(fds[1]);
	if (rc < 0) {
		xn_fail_internal(err, "cannot run '%s': %s", argv[0], uv_strerror(rc));
		uv_close((uv_handle_t *)&r->out, (uv_close_cb)free);
		return -1;
	}
	r->pending = 2;
	uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read);
	return 0;
}

struct sync_res {
	int status;
	char *out;
};

static void sync_done(void *ud, int status, const char *out)
{
	struct sync_res *r = ud;
	r->status = status;
	r->out = xn_strdup(out);
}

int xn_run_sync(char *const *argv, char **output, xn_error **err)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sync_res res = {-1, NULL};
	int rc = xn_run(&loop, argv, sync_done, &res, err);
	if (rc == 0)
		uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (rc < 0)
		return -1;
	if (res.status != 0) {
		xn_fail_internal(err, "'%s' failed (status %d): %s", argv[0], res.status,
				 res.out ? res.out : "");
		free(res.out);
		return -1;
	}
	if (output)
		*output = res.out;
	else
		free(res.out);
	return 0;
}

void xn_proc_stop_helpers(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	static const char *helpers[] = {"qemu-img", "qemu-nbd"};
	for (struct dirent *e; (e = readdir(d));) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		char path[64], line[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		size_t n = fread(line, 1, sizeof(line) - 1, f);
		fclose(f);
		line[n] = '\0';
		/* pid (comm) state ppid ...: comm may hold spaces, ends at the last ')' */
		char *open = strchr(line, '('), *close = strrchr(line, ')');
		if (!open || !close || close < open)
			continue;
		*close = '\0';
		int ppid = 0;
		if (sscanf(close + 2, "%*c %d", &ppid) != 1 || ppid != (int)getpid())
			continue;
		for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++)
			if (strcmp(open + 1, helpers[i]) == 0)
				kill(pid, SIGTERM);
	}
	closedir(d);
}
