/* qemu_proc.h: the QEMU process — engine choice, spawning, identity.
 *
 * A VM's QEMU must outlive the daemon: it runs in its own session, with
 * its output in <run_dir>/qemu.log, so neither the daemon's death nor
 * signals sent to the daemon's process group reach it. While the daemon
 * that spawned it runs, it is a child (exit callback, reaped by libuv);
 * after a daemon restart it is found again from its recorded pid, checked
 * against the recorded start time and VM uuid so a reused pid is never
 * mistaken for it. */
#ifndef XN_ENGINE_QEMU_PROC_H
#define XN_ENGINE_QEMU_PROC_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "util/err.h"

/* True when a /proc/cpuinfo text advertises hardware virtualization
 * (the "vmx" or "svm" flag). Pure. */
bool xn_cpuinfo_has_hw_virt(const char *cpuinfo);

/* "kvm" when the CPU has hardware virtualization and /dev/kvm opens
 * read-write, else "tcg". A /dev/kvm without the CPU flag is a
 * software-only module, far slower than TCG, so the flag decides. */
const char *xn_engine_detect(void);

/* Called once when a spawned QEMU exits, with its exit status or the
 * signal that ended it. The process object is freed after it returns. */
typedef void (*xn_qemu_exit_fn)(void *ud, int64_t exit_status, int term_signal);

/* An open fd of the daemon, handed to QEMU as child_fd (>= 3). */
typedef struct xn_qemu_fd {
	int fd;
	int child_fd;
} xn_qemu_fd;

typedef struct xn_qemu_spawn_opts {
	char *const *argv;          /* argv[0] is looked up in PATH */
	const char *log_path;       /* stdout and stderr are appended here */
	const xn_qemu_fd *fds;      /* extra fds to pass, may be NULL */
	size_t nfds;
	xn_qemu_exit_fn on_exit;    /* may be NULL */
	void *ud;
} xn_qemu_spawn_opts;

typedef struct xn_qemu_proc xn_qemu_proc;

/* Start QEMU detached (new session, stdin /dev/null, cwd "/"). The caller
 * keeps its fds; they may be closed once this returns. NULL with
 * INTERNAL_ERROR if the log cannot be opened or exec fails. */
xn_qemu_proc *xn_qemu_spawn(uv_loop_t *loop, const xn_qemu_spawn_opts *o, xn_error **err);

/* The pid of a spawned QEMU. */
pid_t xn_qemu_proc_pid(const xn_qemu_proc *p);

/* Stop watching the child without touching it: no exit callback, and the
 * loop no longer waits for it. For daemon shutdown, QEMU keeps running.
 * Not to be called after the exit callback. NULL is ignored. */
void xn_qemu_proc_release(xn_qemu_proc *p);

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat): with the pid, it identifies the process. */
int xn_qemu_proc_identity(pid_t pid, uint64_t *start_ticks, xn_error **err);

/* True if pid is alive, started at start_ticks, and has vm_uuid in its
 * command line: the QEMU recorded for that VM, not a reused pid. */
bool xn_qemu_proc_is(pid_t pid, uint64_t start_ticks, const char *vm_uuid);

/* The thread ids of a QEMU's vCPUs (threads named "CPU <n>/TCG" or
 * "CPU <n>/KVM" under -name debug-threads=on): vCPU i's at tids[i], 0
 * for a vCPU not found. Returns the number of vCPUs seen (highest index
 * + 1, at most max), or -1 if the process cannot be read. */
int xn_qemu_vcpu_tids(pid_t qemu_pid, pid_t *tids, int max);

/* SIGKILL. A process already gone is success. Check xn_qemu_proc_is
 * first when the pid comes from a record. */
int xn_qemu_proc_kill(pid_t pid, xn_error **err);

/* Pure helpers, exposed for the tests. Field 22 of a /proc/PID/stat text
 * (the command name may hold spaces and parentheses); -1 if malformed. */
int xn_proc_stat_start_ticks(const char *stat, uint64_t *start_ticks);
/* True if one of the NUL-separated arguments of a /proc/PID/cmdline
 * text of len bytes contains needle. */
bool xn_proc_cmdline_has(const char *cmdline, size_t len, const char *needle);
/* The vCPU index a thread name ("CPU 3/TCG\n" as /proc/.../comm reads)
 * names, or -1 for any other thread. */
int xn_qemu_vcpu_index(const char *comm);

#endif
