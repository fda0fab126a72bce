/* img_job.h: qemu-img as a child process whose output is read as it
 * comes, so that a long conversion (`qemu-img convert -p`) reports its
 * progress while it runs. Everything it prints (stdout and stderr, in
 * order, the first 64 KiB) is kept for error messages. xn_run (util/
 * proc.h) is the simpler form for helpers whose output only matters at
 * the end. */
#ifndef XN_IMG_JOB_H
#define XN_IMG_JOB_H

#include <uv.h>

typedef struct xn_img_job xn_img_job;

/* A -p figure: fraction of the work done, 0 to 1. */
typedef void (*xn_img_progress)(void *ud, double fraction);
/* The end: the exit status (-signal if killed; 127 if it could not be
 * started) and what it printed (borrowed). */
typedef void (*xn_img_done)(void *ud, int status, const char *output);

/* Start argv[0] (looked up in PATH); done is called exactly once, never
 * before this returns. progress may be NULL. The job is freed after
 * done. */
xn_img_job *xn_img_job_run(uv_loop_t *loop, char *const *argv, xn_img_progress progress,
			   xn_img_done done, void *ud);
/* Ask it to stop (SIGTERM); done follows as usual. */
void xn_img_job_kill(xn_img_job *j);

#endif
