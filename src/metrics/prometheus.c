/* prometheus.c: GET /metrics, the host's and running VMs' metrics in
 * the Prometheus text exposition format (version 0.0.4), for scrapers
 * (metrics_int.h).
 *
 * Counters are the raw cumulative readings of the last sample (vCPU
 * seconds, disk bytes and requests, NIC bytes, since the VM's QEMU
 * started); gauges are its data sources. Every live data source also
 * appears as xenia_data_source{owner,uuid,name} under xapi's name, so
 * nothing xapi shows is missing here. Read-only: any session with the
 * read-only role (session_id or basic authentication) may scrape. */
#include "metrics/metrics_int.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* Families in order of first use: name -> {"help", "type", "lines"}. */
struct text {
	json_t *families;
};

static void family(struct text *x, const char *name, const char *type, const char *help)
{
	if (!json_object_get(x->families, name))
		json_object_set_new(x->families, name,
				    json_pack("{s:s,s:s,s:[]}", "help", help, "type", type, "lines"));
}

/* A label value with \, " and newlines escaped. Caller frees. */
static char *escape(const char *s)
{
	xn_buf b = {0};
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			xn_buf_printf(&b, "\\%c", *s);
		else if (*s == '\n')
			xn_buf_puts(&b, "\\n");
		else
			xn_buf_append(&b, s, 1);
	}
	return b.data ? xn_buf_steal(&b) : xn_strdup("");
}

/* One sample of family name: labels as "key", value, ... ending NULL. */
static void sample(struct text *x, const char *name, double v, ...)
{
	if (!isfinite(v))
		return;
	xn_buf b = {0};
	xn_buf_puts(&b, name);
	va_list ap;
	va_start(ap, v);
	const char *sep = "{";
	for (const char *k; (k = va_arg(ap, const char *));) {
		XN_AUTOFREE char *val = escape(va_arg(ap, const char *));
		xn_buf_printf(&b, "%s%s=\"%s\"", sep, k, val);
		sep = ",";
	}
	va_end(ap);
	xn_buf_printf(&b, "%s %.15g", *sep == ',' ? "}" : "", v);
	json_array_append_new(json_object_get(json_object_get(x->families, name), "lines"),
			      json_string(b.data));
	xn_buf_reset(&b);
}

static double live(xn_mowner *o, const char *name)
{
	json_t *v = json_object_get(json_object_get(o->live, name), "value");
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static double raw(xn_mowner *o, const char *key)
{
	json_t *v = json_object_get(o->raw, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static void host_text(struct text *x, xn_mowner *o)
{
	const char *u = o->uuid;
	family(x, "xenia_host_cpu_usage_ratio", "gauge", "Busy fraction of each host CPU over the last sample");
	family(x, "xenia_host_cpu_busy_seconds_total", "counter", "Time each host CPU was busy since boot");
	family(x, "xenia_host_memory_total_bytes", "gauge", "Memory of the host");
	family(x, "xenia_host_memory_free_bytes", "gauge", "Memory available for new VMs (MemAvailable)");
	family(x, "xenia_host_load1", "gauge", "Load average over one minute");
	family(x, "xenia_host_running_vms", "gauge", "VMs running on the host");
	for (int i = 0;; i++) {
		char name[16], cpu[16];
		snprintf(name, sizeof(name), "cpu%d", i);
		if (!json_object_get(o->live, name))
			break;
		snprintf(cpu, sizeof(cpu), "%d", i);
		sample(x, "xenia_host_cpu_usage_ratio", live(o, name), "host", u, "cpu", cpu, NULL);
		XN_AUTOFREE char *busy = xn_asprintf("cpu%d_busy", i);
		sample(x, "xenia_host_cpu_busy_seconds_total", raw(o, busy) / 100.0 /* USER_HZ */,
		       "host", u, "cpu", cpu, NULL);
	}
	sample(x, "xenia_host_memory_total_bytes", live(o, "memory_total_kib") * 1024, "host", u, NULL);
	sample(x, "xenia_host_memory_free_bytes", live(o, "memory_free_kib") * 1024, "host", u, NULL);
	sample(x, "xenia_host_load1", live(o, "loadavg"), "host", u, NULL);
	sample(x, "xenia_host_running_vms", live(o, "running_domains"), "host", u, NULL);
	family(x, "xenia_pif_receive_bytes_total", "counter", "Bytes received on a physical interface");
	family(x, "xenia_pif_transmit_bytes_total", "counter", "Bytes sent on a physical interface");
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(o->raw, "pifs"), i, d) {
		const char *dev = json_string_value(d);
		XN_AUTOFREE char *rx = xn_asprintf("pif_%s_rx_bytes", dev);
		XN_AUTOFREE char *tx = xn_asprintf("pif_%s_tx_bytes", dev);
		sample(x, "xenia_pif_receive_bytes_total", raw(o, rx), "host", u, "device", dev, NULL);
		sample(x, "xenia_pif_transmit_bytes_total", raw(o, tx), "host", u, "device", dev, NULL);
	}
}

static void vm_disks_text(struct text *x, xn_mowner *o, const char *name)
{
	static const struct {
		const char *family, *key, *help;
	} m[] = {{"xenia_vm_vbd_read_bytes_total", "rd_bytes", "Bytes read from a VM's disk"},
		 {"xenia_vm_vbd_write_bytes_total", "wr_bytes", "Bytes written to a VM's disk"},
		 {"xenia_vm_vbd_read_requests_total", "rd_operations", "Read requests on a VM's disk"},
		 {"xenia_vm_vbd_write_requests_total", "wr_operations", "Write requests on a VM's disk"}};
	for (size_t k = 0; k < XN_ARRAY_LEN(m); k++)
		family(x, m[k].family, "counter", m[k].help);
	const char *dev;
	json_t *sr;
	json_object_foreach(json_object_get(o->raw, "vbd_srs"), dev, sr)
		for (size_t k = 0; k < XN_ARRAY_LEN(m); k++) {
			XN_AUTOFREE char *key = xn_asprintf("vbd_%s_%s", dev, m[k].key);
			sample(x, m[k].family, raw(o, key), "vm", o->uuid, "name", name, "device", dev,
			       NULL);
		}
}

static void vm_nics_text(struct text *x, xn_mowner *o, const char *name)
{
	family(x, "xenia_vm_vif_receive_bytes_total", "counter", "Bytes a VM received on a NIC");
	family(x, "xenia_vm_vif_transmit_bytes_total", "counter", "Bytes a VM sent on a NIC");
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(o->raw, "vifs"), i, d) {
		const char *dev = json_string_value(d);
		XN_AUTOFREE char *rx = xn_asprintf("tap%s_tx_bytes", dev);
		XN_AUTOFREE char *tx = xn_asprintf("tap%s_rx_bytes", dev);
		sample(x, "xenia_vm_vif_receive_bytes_total", raw(o, rx), "vm", o->uuid, "name", name,
		       "vif", dev, NULL);
		sample(x, "xenia_vm_vif_transmit_bytes_total", raw(o, tx), "vm", o->uuid, "name",
		       name, "vif", dev, NULL);
	}
}

static void vm_text(struct text *x, xn_host *h, xn_mowner *o)
{
	json_t *vm = xn_db_get(h->db, o->ref);
	if (!vm)
		return;
	const char *name = json_string_value(json_object_get(vm, "name_label"));
	const char *u = o->uuid;
	family(x, "xenia_vm_vcpus", "gauge", "vCPUs of a running VM");
	family(x, "xenia_vm_cpu_seconds_total", "counter", "CPU time of each vCPU of a VM");
	family(x, "xenia_vm_cpu_usage_ratio", "gauge", "CPU use of a VM as a fraction of its vCPUs, over the last sample");
	family(x, "xenia_vm_memory_bytes", "gauge", "Memory allocated to a VM (balloon)");
	family(x, "xenia_vm_memory_target_bytes", "gauge", "Memory target of a VM's balloon");
	family(x, "xenia_vm_memory_max_bytes", "gauge", "Memory a VM may have at most (memory_static_max)");
	family(x, "xenia_vm_memory_guest_free_bytes", "gauge", "Free memory as the guest's balloon driver reports it");
	sample(x, "xenia_vm_vcpus", o->vcpus, "vm", u, "name", name, NULL);
	for (int i = 0; i < o->vcpus; i++) {
		char key[32], cpu[16];
		snprintf(key, sizeof(key), "cpu%d_ns", i);
		snprintf(cpu, sizeof(cpu), "%d", i);
		sample(x, "xenia_vm_cpu_seconds_total", raw(o, key) / 1e9, "vm", u, "name", name,
		       "vcpu", cpu, NULL);
	}
	sample(x, "xenia_vm_cpu_usage_ratio", live(o, "cpu_usage"), "vm", u, "name", name, NULL);
	sample(x, "xenia_vm_memory_bytes", live(o, "memory"), "vm", u, "name", name, NULL);
	sample(x, "xenia_vm_memory_target_bytes", live(o, "memory_target"), "vm", u, "name", name, NULL);
	sample(x, "xenia_vm_memory_max_bytes",
	       (double)json_integer_value(json_object_get(vm, "memory_static_max")), "vm", u, "name",
	       name, NULL);
	sample(x, "xenia_vm_memory_guest_free_bytes", live(o, "memory_internal_free") * 1024, "vm",
	       u, "name", name, NULL);
	vm_disks_text(x, o, name);
	vm_nics_text(x, o, name);
}

char *xn_prometheus_text(xn_host *h)
{
	struct text x = {json_object()};
	for (xn_mowner *o = xn_metrics_owners(); o; o = o->next)
		if (o->is_host)
			host_text(&x, o);
	for (xn_mowner *o = xn_metrics_owners(); o; o = o->next)
		if (!o->is_host)
			vm_text(&x, h, o);
	family(&x, "xenia_data_source", "gauge", "Every data source of the last sample, under xapi's names");
	for (xn_mowner *o = xn_metrics_owners(); o; o = o->next) {
		const char *name;
		json_t *ds;
		json_object_foreach(o->live, name, ds)
			sample(&x, "xenia_data_source", json_number_value(json_object_get(ds, "value")),
			       "owner", o->is_host ? "host" : "vm", "uuid", o->uuid, "name", name, NULL);
	}
	xn_buf b = {0};
	const char *fam;
	json_t *f;
	json_object_foreach(x.families, fam, f) {
		xn_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", fam,
			      json_string_value(json_object_get(f, "help")), fam,
			      json_string_value(json_object_get(f, "type")));
		size_t i;
		json_t *l;
		json_array_foreach(json_object_get(f, "lines"), i, l)
			xn_buf_printf(&b, "%s\n", json_string_value(l));
	}
	json_decref(x.families);
	return b.data ? xn_buf_steal(&b) : xn_strdup("");
}

static void handle(void *ud, xn_http_req *req)
{
	xn_host *h = ud;
	XN_AUTOERR xn_error *err = NULL;
	if (xn_api_http_role(h, req, &err) < XN_ROLE_READ_ONLY) {
		static const char msg[] = "a session with the read-only role is needed "
					  "(session_id= or basic authentication)\n";
		xn_http_respond_headers(req, 401, "text/plain",
					"WWW-Authenticate: Basic realm=\"xenia\"\r\n", msg,
					sizeof(msg) - 1);
		return;
	}
	XN_AUTOFREE char *text = xn_prometheus_text(h);
	xn_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

void xn_prometheus_init(xn_host *h)
{
	xn_api_route(h->api, "GET", "/metrics", handle, h);
}
