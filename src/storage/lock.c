/* lock.c: the toolstack's lock on the disks of shared SRs.
 *
 * QEMU locks local image files itself, but does no locking over
 * nfs://, and its locks never reach other hosts. For SRs whose driver
 * has lock/unlock, a VM that opens a VDI writable holds the driver's
 * lock on it, named after the VDI's uuid (its image file changes with
 * snapshots, the VDI does not), with "<host uuid>/<vm uuid>" as owner,
 * from before QEMU opens the disk until QEMU has closed it.
 *
 * Lock and unlock calls are carried out one at a time in the order they
 * were made, so that a VM stopped and started again at once never has
 * its new lock removed by the release of its old one. */
#include "storage/storage.h"

#include "util/log.h"

struct lock_op {
	xn_host *h;
	xn_sr_conf *conf;
	char *file, *owner;
	bool take;
	xn_storage_done done;  /* NULL: errors are logged */
	void *ud;
	struct lock_op *next;
};

static struct lock_op *queue, **queue_tail = &queue;
static bool queue_busy;

static void lock_next(void);

static int lock_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	struct lock_op *op = ud;
	const xn_sr_ops *ops = xn_sr_ops_by_type(c->type);
	return op->take ? ops->lock(c, op->file, op->owner, err)
			: ops->unlock(c, op->file, op->owner, err);
}

static void lock_done(void *ud, xn_error *err)
{
	struct lock_op *op = ud;
	if (op->done) {
		op->done(op->ud, err);
	} else if (err) {
		xn_warn("storage: cannot %s disk %s for %s: %s", op->take ? "lock" : "unlock",
			op->file, op->owner, err->message);
		xn_error_free(err);
	}
	free(op->file);
	free(op->owner);
	free(op);
	queue_busy = false;
	lock_next();
}

static void lock_next(void)
{
	if (queue_busy || !queue)
		return;
	struct lock_op *op = queue;
	queue = op->next;
	if (!queue)
		queue_tail = &queue;
	queue_busy = true;
	xn_sr_conf *conf = op->conf;  /* taken over by the work */
	op->conf = NULL;
	xn_sr_work_on(op->h, conf, lock_work, op, lock_done);
}

static void lock_queue(xn_host *h, json_t *key, bool take, xn_storage_done done, void *ud)
{
	struct lock_op *op = xn_calloc(1, sizeof(*op));
	op->h = h;
	op->conf = xn_sr_conf_get(h, json_string_value(json_object_get(key, "sr")));
	op->file = xn_strdup(json_string_value(json_object_get(key, "file")));
	op->owner = xn_strdup(json_string_value(json_object_get(key, "owner")));
	op->take = take;
	op->done = done;
	op->ud = ud;
	if (!op->conf) {
		/* the SR is gone: so is its lock */
		free(op->file);
		free(op->owner);
		free(op);
		if (done)
			done(ud, NULL);
		return;
	}
	*queue_tail = op;
	queue_tail = &op->next;
	lock_next();
}

json_t *xn_vdi_lock_key(xn_host *h, const char *vdi_ref, const char *vm_ref)
{
	const char *sr = xn_db_str(h->db, vdi_ref, "SR");
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops || !ops->lock)
		return NULL;
	XN_AUTOFREE char *owner = xn_asprintf("%s/%s", xn_db_str(h->db, h->host_ref, "uuid"),
					      vm_ref ? xn_db_str(h->db, vm_ref, "uuid") : "destroy");
	return json_pack("{s:s,s:s,s:s}", "sr", sr, "file", xn_db_str(h->db, vdi_ref, "uuid"),
			 "owner", owner);
}

void xn_vdi_lock(xn_host *h, json_t *key, xn_storage_done done, void *ud)
{
	lock_queue(h, key, true, done, ud);
}

void xn_vdi_unlock(xn_host *h, json_t *key)
{
	lock_queue(h, key, false, NULL, NULL);
}
