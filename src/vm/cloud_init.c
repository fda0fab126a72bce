/* cloud_init.c: the cloud-init NoCloud seed of a VM, made at each start.
 *
 * A VM whose other_config has xenia-cloud-init=nocloud (the "Generic
 * cloud image" template sets it) gets, as one more read-only virtio
 * disk, an ISO 9660 image labelled "cidata" holding two files, as
 * cloud-init's NoCloud data source reads them:
 *
 *   meta-data  instance-id (the VM's uuid), local-hostname, public-keys
 *   user-data  other_config:cloud-init-user-data as given, else a
 *              #cloud-config with the hostname and the SSH key
 *
 * from other_config:cloud-init-hostname (default: the name-label if it
 * is a valid host name), cloud-init-ssh-key and cloud-init-user-data.
 * The image is DATA/seeds/<vm uuid>.iso, written by xorriso in a child
 * process (the loop never waits) into a temporary name and renamed, so a
 * start always sees a whole seed; it is made afresh at every start, so
 * changed keys apply at the next boot, and removed with the VM. Strings are written as JSON
 * strings, which YAML reads as the same strings. */
#include "vm/cloud_init.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "db/db.h"
#include "model/model.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

struct seed_job {
	xn_cloud_init_done done;
	void *ud;
	char *dir, *tmp, *iso;
};

bool xn_cloud_init_hostname_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return false;
	return true;
}

/* s as a double-quoted scalar (a JSON string is one in YAML). */
static char *yaml_str(const char *s)
{
	json_t *j = json_string(s);
	char *out = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	return out;
}

void xn_cloud_init_render(const char *instance_id, const char *hostname, const char *ssh_key,
			  const char *user_data, char **meta, char **user)
{
	XN_AUTOFREE char *id = yaml_str(instance_id);
	XN_AUTOFREE char *host = yaml_str(hostname);
	XN_AUTOFREE char *key = ssh_key && ssh_key[0] ? yaml_str(ssh_key) : NULL;
	*meta = xn_asprintf("instance-id: %s\nlocal-hostname: %s\n%s%s%s", id, host,
			    key ? "public-keys:\n  - " : "", key ? key : "", key ? "\n" : "");
	if (user_data && user_data[0])
		*user = xn_strdup(user_data);
	else
		*user = xn_asprintf("#cloud-config\nhostname: %s\n%s%s%s", host,
				    key ? "ssh_authorized_keys:\n  - " : "", key ? key : "",
				    key ? "\n" : "");
}

static void job_free(struct seed_job *j)
{
	if (j->dir)
		xn_rm_rf(j->dir, NULL);
	free(j->dir);
	free(j->tmp);
	free(j->iso);
	free(j);
}

static void seed_made(void *ud, int status, const char *output)
{
	struct seed_job *j = ud;
	xn_error *err = NULL;
	if (status != 0)
		xn_fail_internal(&err, "cannot make the cloud-init seed '%s': xorriso: %s", j->iso,
				 output);
	else if (rename(j->tmp, j->iso) < 0)
		xn_fail_errno(&err, errno, "cannot rename '%s'", j->tmp);
	j->done(j->ud, err ? NULL : j->iso, err);
	job_free(j);
}

/* The seed's files in j->dir, from the VM's keys. */
static int write_files(struct seed_job *j, const char *uuid, const char *hostname,
		       json_t *oc, xn_error **err)
{
	XN_AUTOFREE char *meta = NULL, *user = NULL;
	xn_cloud_init_render(uuid, hostname,
			     json_string_value(json_object_get(oc, "cloud-init-ssh-key")),
			     json_string_value(json_object_get(oc, "cloud-init-user-data")), &meta,
			     &user);
	XN_AUTOFREE char *mp = xn_asprintf("%s/meta-data", j->dir);
	XN_AUTOFREE char *up = xn_asprintf("%s/user-data", j->dir);
	if (xn_rm_rf(j->dir, err) < 0 || xn_mkdir_p(j->dir, 0700, err) < 0 ||
	    xn_write_file_atomic(mp, meta, strlen(meta), 0644, err) < 0 ||
	    xn_write_file_atomic(up, user, strlen(user), 0644, err) < 0)
		return -1;
	return 0;
}

/* The host name the guest gets: the key, else the name-label if it is
 * one, else NULL (and an error for a bad key). */
static const char *pick_hostname(json_t *vm, json_t *oc, xn_error **err)
{
	const char *want = json_string_value(json_object_get(oc, "cloud-init-hostname"));
	if (want) {
		if (!xn_cloud_init_hostname_ok(want)) {
			xn_fail(err, "INVALID_VALUE", "other_config:cloud-init-hostname", want, NULL);
			return NULL;
		}
		return want;
	}
	const char *label = json_string_value(json_object_get(vm, "name_label"));
	return xn_cloud_init_hostname_ok(label) ? label : "localhost";
}

void xn_cloud_init_seed(xn_host *h, const char *vm_ref, xn_cloud_init_done done, void *ud)
{
	json_t *vm = xn_db_get(h->db, vm_ref);
	json_t *oc = json_object_get(vm, "other_config");
	if (!xn_streq(json_string_value(json_object_get(oc, "xenia-cloud-init")), "nocloud")) {
		done(ud, NULL, NULL);
		return;
	}
	const char *uuid = json_string_value(json_object_get(vm, "uuid"));
	xn_error *err = NULL;
	const char *hostname = pick_hostname(vm, oc, &err);
	if (!hostname) {
		done(ud, NULL, err);
		return;
	}
	struct seed_job *j = xn_calloc(1, sizeof(*j));
	*j = (struct seed_job){.done = done, .ud = ud};
	XN_AUTOFREE char *seeds = xn_asprintf("%s/seeds", h->data_dir);
	j->dir = xn_asprintf("%s/%s.d", seeds, uuid);
	j->tmp = xn_asprintf("%s/%s.iso.tmp", seeds, uuid);
	j->iso = xn_asprintf("%s/%s.iso", seeds, uuid);
	char *argv[] = {"xorriso", "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R",
			"-o", j->tmp, j->dir, NULL};
	if (xn_mkdir_p(seeds, 0700, &err) < 0 || write_files(j, uuid, hostname, oc, &err) < 0 ||
	    xn_run(h->loop, argv, seed_made, j, &err) < 0) {
		done(ud, NULL, err);
		job_free(j);
		return;
	}
	xn_info("vm %s: making its cloud-init seed", uuid);
}

void xn_cloud_init_forget(xn_host *h, const char *uuid)
{
	XN_AUTOFREE char *iso = xn_asprintf("%s/seeds/%s.iso", h->data_dir, uuid);
	if (unlink(iso) < 0 && errno != ENOENT)
		xn_warn("cannot remove '%s': %s", iso, strerror(errno));
}
