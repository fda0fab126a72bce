/* xva_stream.h: the bytes of an XVA (xenapi.md §5), written or read by
 * a worker thread.
 *
 * An XVA is a tar: `ova.xml` first, then for each disk (in the
 * lexicographic order of its id, "Ref:N") its data in 1 MiB chunks
 * `Ref:N/%08d`, each followed by `Ref:N/%08d.checksum` (the SHA-1 of the
 * chunk in lowercase hex; `.xxhash`, XXH64 in uppercase hex, is accepted
 * on import too). All-zero chunks are left out, except the first and the
 * last; an importer treats a gap in the chunk numbers as that many
 * chunks of zeros of the first chunk's length.
 *
 * libarchive reads and writes the tar (and gzip or zstd around it, found
 * by itself on import); it pulls its input, so the work runs on a thread
 * of its own, with plain blocking I/O: a pipe to or from the loop (which
 * moves the HTTP body), and each disk image served by a private qemu-nbd
 * that libnbd starts (socket activation) and that exits when the thread
 * disconnects, or when the daemon dies. The thread never touches the
 * database; it hands ova.xml to the loop and gets back the images to
 * fill (import), and says when it has ended. */
#ifndef XN_XVA_STREAM_H
#define XN_XVA_STREAM_H

#include <uv.h>

#include "util/err.h"

#define XN_XVA_CHUNK (1 << 20)
/* The largest ova.xml an import accepts. */
#define XN_XVA_MAX_HEADER (16 << 20)

typedef struct xn_xva_disk {
	char *prefix;      /* the VDI's id in ova.xml, "Ref:3" */
	char *image;       /* the path or URL qemu-nbd opens */
	char *format;      /* its QEMU format ("qcow2") */
	int64_t size;      /* virtual size in bytes */
} xn_xva_disk;

typedef struct xn_xva_job xn_xva_job;

/* What the thread tells the loop (called on the loop). */
struct xn_xva_cb {
	/* Import: ova.xml has been read (xml borrowed for the call); the
	 * thread waits for xn_xva_job_go or xn_xva_job_abort. */
	void (*header)(void *ud, const char *xml, size_t len);
	/* The thread has ended: err is NULL on success (taken over). The job
	 * frees itself afterwards. */
	void (*done)(void *ud, xn_error *err);
	void *ud;
};

/* A pipe between the loop and a job's thread, 1 MiB deep: the loop's
 * end (reading it if loop_reads, else writing) is initialised as p (p->data
 * set to ud); *thread_fd gets the other end, blocking, for the job. */
int xn_xva_pipe(uv_loop_t *loop, uv_pipe_t *p, void *ud, bool loop_reads, int *thread_fd,
		xn_error **err);

/* Export: write ova.xml (xml, copied) and the disks (copied, in the
 * order given) as an XVA to fd (blocking, taken over, closed at the
 * end); compress is NULL, "gzip" or "zstd". */
xn_xva_job *xn_xva_export_start(uv_loop_t *loop, int fd, const char *xml,
				const xn_xva_disk *disks, size_t n, const char *compress,
				const struct xn_xva_cb *cb, xn_error **err);
/* Import: read an XVA from fd (blocking, taken over, closed at the end). */
xn_xva_job *xn_xva_import_start(uv_loop_t *loop, int fd, const struct xn_xva_cb *cb,
				xn_error **err);
/* Import, after header: fill these disks (copied; n may be 0 for a
 * metadata-only archive, which must then end). */
void xn_xva_job_go(xn_xva_job *j, const xn_xva_disk *disks, size_t n);
/* Stop at the next step (done follows, with an error). The caller also
 * closes its end of the pipe, so that a thread blocked on it wakes. */
void xn_xva_job_abort(xn_xva_job *j);
/* Archive bytes read (import) or disk bytes covered (export) so far. */
int64_t xn_xva_job_bytes(const xn_xva_job *j);

/* The hex digest of a chunk as its checksum member holds it: SHA-1 in
 * lowercase (xxhash false) or XXH64 as 16 uppercase digits; out needs 41
 * bytes. */
void xn_xva_digest(const void *buf, size_t len, bool xxhash, char *out);
/* Whether a tar member name is "<prefix>/<8 digits>" (*n gets the
 * number). */
bool xn_xva_chunk_name(const char *name, const char *prefix, long *n);

#endif
