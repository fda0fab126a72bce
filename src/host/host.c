/* host.c: the records that describe this host (host.h): pool, host,
 * host_metrics, host_cpu and the control domain, created on first start
 * and refreshed on every start from what the machine reports. */
#include "host/host.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"

#define XN_VERSION "0.1.0"

static const char *first_ref(xn_db *db, const char *cls)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(db, xn_model_class(cls)), k, v) return k;
	return NULL;
}

/* "key : value" lines of /proc/cpuinfo for the first CPU. */
static json_t *cpu_info(const char *engine)
{
	XN_AUTOFREE char *text = xn_read_file("/proc/cpuinfo", NULL, NULL);
	json_t *info = json_object();
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	XN_AUTOFREE char *count = xn_asprintf("%ld", n);
	json_object_set_new(info, "cpu_count", json_string(count));
	json_object_set_new(info, "socket_count", json_string("1"));
	static const struct {
		const char *proc, *key;
	} keys[] = {{"vendor_id", "vendor"}, {"model name", "modelname"}, {"cpu MHz", "speed"},
		    {"flags", "flags"}, {"cpu family", "family"}, {"model", "model"},
		    {"stepping", "stepping"}};
	for (char *save, *line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!*line)
			break; /* end of the first CPU */
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		char *end = colon;
		while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		const char *val = colon + 1 + (colon[1] == ' ');
		for (size_t i = 0; i < XN_ARRAY_LEN(keys); i++)
			if (strcmp(line, keys[i].proc) == 0 && !json_object_get(info, keys[i].key))
				json_object_set_new(info, keys[i].key, json_string(val));
	}
	json_object_set_new(info, "engine", json_string(engine));
	return info;
}

static json_int_t mem_total(void)
{
	struct sysinfo si;
	sysinfo(&si);
	return (json_int_t)si.totalram * si.mem_unit;
}

static json_int_t mem_free(void)
{
	struct sysinfo si;
	sysinfo(&si);
	return (json_int_t)(si.freeram + si.bufferram) * si.mem_unit;
}

const char *xn_host_address(xn_host *h)
{
	(void)h;
	return "127.0.0.1";
}

static void create_records(xn_host *h, xn_changes *cs, const char *hostname)
{
	const char *metrics = xn_changes_add(cs, xn_model_class("host_metrics"), NULL,
					     json_pack("{s:b}", "live", 1));
	XN_AUTOFREE char *mref = xn_strdup(metrics);
	h->host_ref = xn_strdup(xn_changes_add(
		cs, xn_model_class("host"), NULL,
		json_pack("{s:s,s:s,s:s,s:s,s:b,s:s}", "name_label", hostname, "hostname", hostname,
			  "address", xn_host_address(h), "metrics", mref, "enabled", 1,
			  "sched_policy", "credit")));
	h->pool_ref = xn_strdup(xn_changes_add(
		cs, xn_model_class("pool"), NULL,
		json_pack("{s:s,s:s}", "name_label", "", "master", h->host_ref)));
	XN_AUTOFREE char *label = xn_asprintf("Control domain on host: %s", hostname);
	const char *vm_metrics = xn_changes_add(cs, xn_model_class("VM_metrics"), NULL, json_object());
	XN_AUTOFREE char *vmref = xn_strdup(vm_metrics);
	h->dom0_ref = xn_strdup(xn_changes_add(
		cs, xn_model_class("VM"), NULL,
		json_pack("{s:s,s:b,s:s,s:s,s:i,s:s,s:s,s:s}", "name_label", label,
			  "is_control_domain", 1, "power_state", "Running", "resident_on",
			  h->host_ref, "domid", 0, "metrics", vmref, "actions_after_crash",
			  "restart", "domain_type", "pv")));
	xn_changes_set(cs, h->host_ref, "control_domain", json_string(h->dom0_ref));
}

/* What changes from one start to the next: engine, CPU, memory, version. */
static void refresh_records(xn_host *h, xn_changes *cs)
{
	json_t *rec = xn_changes_edit(cs, h->host_ref);
	json_object_set_new(rec, "API_version_major", json_integer(2));
	json_object_set_new(rec, "API_version_minor", json_integer(21));
	json_object_set_new(rec, "API_version_vendor", json_string("XenSource"));
	json_object_set_new(rec, "software_version",
			    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "product_brand", "Xenia",
				      "product_version", XN_VERSION, "platform_name", "Xenia",
				      "xapi", "1.20", "engine", h->engine, "qemu",
				      h->qemu_binary));
	json_object_set_new(rec, "cpu_info", cpu_info(h->engine));
	json_object_set_new(rec, "capabilities",
			    json_pack("[s,s]", "hvm-3.0-x86_64", h->engine[0] == 'k'
							 ? "kvm" : "tcg"));
	json_object_set_new(rec, "enabled", json_true());
	const char *metrics = json_string_value(json_object_get(rec, "metrics"));
	json_t *m = xn_changes_edit(cs, metrics);
	if (m) {
		json_object_set_new(m, "memory_total", json_integer(mem_total()));
		json_object_set_new(m, "memory_free", json_integer(mem_free()));
		json_object_set_new(m, "live", json_true());
		json_object_set_new(m, "last_updated", xn_datetime_now());
	}
	json_t *dom0 = xn_changes_edit(cs, h->dom0_ref);
	if (dom0) {
		json_int_t ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		json_object_set_new(dom0, "VCPUs_max", json_integer(ncpu));
		json_object_set_new(dom0, "VCPUs_at_startup", json_integer(ncpu));
		json_object_set_new(dom0, "memory_static_max", json_integer(mem_total()));
		json_object_set_new(dom0, "memory_dynamic_max", json_integer(mem_total()));
	}
}

int xn_host_init_records(xn_host *h, xn_error **err)
{
	char hostname[256] = "localhost";
	gethostname(hostname, sizeof(hostname) - 1);
	xn_changes *cs = xn_changes_new(h->db);
	const char *host = first_ref(h->db, "host");
	if (!host) {
		create_records(h, cs, hostname);
		xn_info("first start: created host '%s'", hostname);
	} else {
		h->host_ref = xn_strdup(host);
		h->pool_ref = xn_strdup(first_ref(h->db, "pool"));
		h->dom0_ref = xn_strdup(xn_db_str(h->db, host, "control_domain"));
	}
	refresh_records(h, cs);
	return xn_db_commit(h->db, cs, err);
}
