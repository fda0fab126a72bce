/* proc.h: run a helper program (qemu-img, ...) from the event loop
 * without blocking it; its output is captured for error messages. */
#ifndef XN_PROC_H
#define XN_PROC_H

#include <uv.h>

#include "util/err.h"

/* status: the exit status (or -signal); output: stdout and stderr. */
typedef void (*xn_run_done)(void *ud, int status, const char *output);

/* Start argv[0] (looked up in PATH); done is called once it exits.
 * Returns -1 with an error if it cannot be started (done is not called). */
int xn_run(uv_loop_t *loop, char *const *argv, xn_run_done done, void *ud, xn_error **err);
/* On the daemon's way out: SIGTERM its own qemu-img and qemu-nbd
 * children (merges, imports), which must not go on writing under a
 * daemon that has stopped (a new one may start on the same data). What
 * they leave is what a crash leaves, which the next start handles. */
void xn_proc_stop_helpers(void);

/* Run synchronously (start-up paths only, before the loop serves). */
int xn_run_sync(char *const *argv, char **output, xn_error **err);

#endif
