/* debian_install.c: the "Debian 12" template's installer.
 *
 * VM.provision of a VM whose other_config says xenia-install=debootstrap
 * fills its first new disk with a Debian system before the disks are
 * recorded. The work is images/debian/install.sh (installed by make
 * under the images directory), run as a child process: debootstrap from
 * the mirror into a scratch directory, then the disk written without
 * mounting anything; from other_config:install-repository, or when that
 * is empty from the Debian mirror the host's own apt uses. The daemon
 * only starts it, watches the progress
 * file the script replaces as it goes (a 1 s timer, into the task's
 * progress), and reports how it ended. The root password reaches the
 * script in a 0600 file, not on its command line; downloaded packages
 * stay in DATA/cache/debian for the next install.
 *
 * Files: DATA/install/<vm uuid>/{password,progress}, removed at the end
 * (and, after a crash, at the next install of that VM). */
#include "vm/debian_install.h"

#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http_xfer.h"
#include "db/db.h"
#include "model/model.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"
#include "vm/cloud_init.h"

#define DEFAULT_SUITE "bookworm"

struct install {
	xn_host *h;
	char *task, *dir, *progress, *uuid;
	uv_timer_t *timer;
	xn_storage_done done;
	void *ud;
};

bool xn_debian_install_wanted(xn_host *h, const char *vm_ref)
{
	json_t *oc = xn_db_field(h->db, vm_ref, "other_config");
	return xn_streq(json_string_value(json_object_get(oc, "xenia-install")), "debootstrap");
}

static void install_free(struct install *in)
{
	if (in->timer)
		uv_close((uv_handle_t *)in->timer, (uv_close_cb)free);
	xn_rm_rf(in->dir, NULL);
	free(in->task);
	free(in->dir);
	free(in->progress);
	free(in->uuid);
	free(in);
}

static void poll_progress(uv_timer_t *t)
{
	struct install *in = t->data;
	XN_AUTOFREE char *text = xn_read_file(in->progress, NULL, NULL);
	if (text && in->task)
		xn_xfer_progress(in->h, in->task, strtod(text, NULL));
}

/* The installer's last line of output, for the error. */
static const char *last_line(const char *output, size_t *len)
{
	const char *end = output + strlen(output);
	while (end > output && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	const char *start = end;
	while (start > output && start[-1] != '\n')
		start--;
	*len = (size_t)(end - start);
	return start;
}

static void installed(void *ud, int status, const char *output)
{
	struct install *in = ud;
	xn_error *err = NULL;
	if (status != 0) {
		size_t n;
		const char *line = last_line(output ? output : "", &n);
		xn_fail_internal(&err, "installing Debian failed (status %d): %.*s", status, (int)n,
				 line);
	} else {
		xn_info("vm %s: Debian installed", in->uuid);
	}
	in->done(in->ud, err);
	install_free(in);
}

/* The guest's host name: the VM's name-label if it is one. */
static const char *guest_hostname(xn_host *h, const char *vm_ref)
{
	const char *label = xn_db_str(h->db, vm_ref, "name_label");
	return xn_cloud_init_hostname_ok(label) ? label : "debian";
}

static const char *oc_or(json_t *oc, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(oc, key));
	return v && v[0] ? v : dflt;
}

void xn_debian_install(xn_host *h, const char *vm_ref, const char *task, const char *target,
		       const char *password, xn_storage_done done, void *ud)
{
	json_t *oc = xn_db_field(h->db, vm_ref, "other_config");
	struct install *in = xn_calloc(1, sizeof(*in));
	*in = (struct install){.h = h, .done = done, .ud = ud, .task = task ? xn_strdup(task) : NULL,
			       .uuid = xn_strdup(xn_db_str(h->db, vm_ref, "uuid"))};
	in->dir = xn_asprintf("%s/install/%s", h->data_dir, in->uuid);
	in->progress = xn_asprintf("%s/progress", in->dir);
	XN_AUTOFREE char *pwfile = xn_asprintf("%s/password", in->dir);
	XN_AUTOFREE char *script = xn_asprintf("%s/debian/install.sh", h->images_dir);
	XN_AUTOFREE char *cache = xn_asprintf("%s/cache/debian", h->data_dir);
	const char *argv[] = {script,
			      target,
			      oc_or(oc, "install-repository", ""),
			      oc_or(oc, "install-distribution", DEFAULT_SUITE),
			      guest_hostname(h, vm_ref),
			      pwfile,
			      in->progress,
			      cache,
			      NULL};
	xn_error *err = NULL;
	if (xn_rm_rf(in->dir, &err) < 0 || xn_mkdir_p(in->dir, 0700, &err) < 0 ||
	    xn_write_file_atomic(pwfile, password, strlen(password), 0600, &err) < 0 ||
	    xn_run(h->loop, (char *const *)argv, installed, in, &err) < 0) {
		done(ud, err);
		install_free(in);
		return;
	}
	xn_info("vm %s: installing Debian (%s)", in->uuid, argv[3]);
	in->timer = xn_calloc(1, sizeof(*in->timer));
	uv_timer_init(h->loop, in->timer);
	in->timer->data = in;
	uv_timer_start(in->timer, poll_progress, 1000, 1000);
}
