/* uvwait.h: bounded waiting on a libuv loop for unit tests that drive
 * real processes and sockets. Include after check.h; the test file owns
 * `static uv_loop_t loop`. Every wait has a deadline, so a broken
 * callback fails the test instead of hanging it. */
#ifndef XN_UVWAIT_H
#define XN_UVWAIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

static uv_loop_t loop;
static bool timed_out;

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	timed_out = true;
}

/* Run the loop until *flag is set or ms have passed. */
static inline bool wait_for_quietly(bool *flag, uint64_t ms)
{
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, on_deadline, ms, 0);
	timed_out = false;
	while (!*flag && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return *flag;
}

/* The same, and a failed check if ms pass first. */
static inline bool wait_for(bool *flag, uint64_t ms)
{
	if (!wait_for_quietly(flag, ms))
		fprintf(stderr, "  timed out after %llu ms\n", (unsigned long long)ms);
	CHECK(*flag);
	return *flag;
}

#endif
