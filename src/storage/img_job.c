/* img_job.c: qemu-img with its progress read as it comes (img_job.h). */
#include "storage/img_job.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define KEEP_OUTPUT (64u << 10)

struct xn_img_job {
	uv_process_t proc;
	uv_pipe_t out;
	xn_buf text;
	xn_img_progress progress;
	xn_img_done done;
	void *ud;
	int status;
	int open;                   /* handles still to close */
};

static void closed(uv_handle_t *h)
{
	xn_img_job *j = h->data;
	if (--j->open > 0)
		return;
	j->done(j->ud, j->status, j->text.data ? j->text.data : "");
	xn_buf_reset(&j->text);
	free(j);
}

static void exited(uv_process_t *p, int64_t status, int sig)
{
	xn_img_job *j = p->data;
	j->status = sig ? -sig : (int)status;
	uv_close((uv_handle_t *)p, closed);
}

static void alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	b->base = xn_malloc(4096);
	b->len = 4096;
}

/* qemu-img -p prints "    (12.34/100%)\r": the last whole figure. */
static double last_percent(const char *p, size_t n)
{
	double pct = -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '(')
			continue;
		char num[16];
		size_t k = 0;
		while (i + 1 + k < n && k + 1 < sizeof(num) && p[i + 1 + k] != '/') {
			num[k] = p[i + 1 + k];
			k++;
		}
		num[k] = '\0';
		if (i + 1 + k + 6 <= n && memcmp(p + i + 1 + k, "/100%)", 6) == 0)
			pct = strtod(num, NULL);
	}
	return pct;
}

static void got_output(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	xn_img_job *j = s->data;
	if (n > 0 && j->text.len < KEEP_OUTPUT)
		xn_buf_append(&j->text, b->base, (size_t)n);
	double pct = n > 0 && j->progress ? last_percent(b->base, (size_t)n) : -1;
	if (pct >= 0)
		j->progress(j->ud, pct / 100);
	free(b->base);
	if (n < 0)
		uv_close((uv_handle_t *)s, closed);
}

xn_img_job *xn_img_job_run(uv_loop_t *loop, char *const *argv, xn_img_progress progress,
			   xn_img_done done, void *ud)
{
	xn_img_job *j = xn_calloc(1, sizeof(*j));
	j->progress = progress;
	j->done = done;
	j->ud = ud;
	uv_pipe_init(loop, &j->out, 0);
	j->out.data = j;
	j->proc.data = j;
	/* stdout and stderr into one pipe, so messages keep their order */
	uv_file fds[2];
	int rc = uv_pipe(fds, 0, 0);
	if (rc == 0) {
		uv_pipe_open(&j->out, fds[0]);
		uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
						 {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
						 {.flags = UV_INHERIT_FD, .data.fd = fds[1]}};
		uv_process_options_t o = {.file = argv[0], .args = (char **)argv,
					  .exit_cb = exited, .stdio_count = 3, .stdio = stdio};
		rc = uv_spawn(loop, &j->proc, &o);
		close(fds[1]);
	}
	if (rc < 0) {
		j->status = 127;
		j->open = 1; /* done comes from the pipe's close, after we return */
		xn_buf_printf(&j->text, "cannot run %s: %s", argv[0], uv_strerror(rc));
		uv_close((uv_handle_t *)&j->out, closed);
		return j;
	}
	j->open = 2;
	uv_read_start((uv_stream_t *)&j->out, alloc, got_output);
	return j;
}

void xn_img_job_kill(xn_img_job *j)
{
	if (j->open == 2)
		uv_process_kill(&j->proc, SIGTERM);
}
