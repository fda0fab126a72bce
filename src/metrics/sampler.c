/* sampler.c: every 5 seconds, a sample of the host and of each running
 * VM (metrics_int.h), with the data source names, units and limits of
 * xapi's rrdd and its plugins.
 *
 * Sources, all cheap: /proc/stat (host CPUs), /proc/meminfo,
 * /proc/loadavg, the PIFs' and taps' counters in /sys/class/net, the
 * vCPU threads' CPU time (/proc/<qemu>/task/<tid>/schedstat), and per
 * VM three QMP queries sent together (query-blockstats, query-balloon,
 * the balloon's guest-stats). The /proc and /sys reads are a few small
 * files each and happen on the loop; the QMP queries are asynchronous.
 * A round ends when every reply is in, or 3 seconds after it began
 * (a VM that does not answer gives a sample without those readings).
 *
 * Counters become rates over the time since the previous round of the
 * same owner (so nothing is shown for a VM's first round); each round
 * is stamped with the multiple of 5 seconds it was taken at, as the RRD
 * step wants. */
#include "metrics/metrics_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/qemu_proc.h"
#include "net/net.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/vm.h"

#define MAX_CPUS 256
#define MAX_VCPUS 64
#define ROUND_TIMEOUT_MS 3000
/* A balloon statistic QEMU has no value for. */
#define NO_STAT 18446744073709551615.0

/* One round of readings; QMP replies may outlive it (refs). */
struct round {
	xn_host *h;
	time_t t;
	int refs;                 /* the round itself, and each reply awaited */
	int pending;              /* replies not in yet */
	bool asked;               /* every question is out */
	bool finished;
	json_t *vms;              /* VM ref -> raw readings */
	json_t *host_raw;         /* the host's raw readings */
	double now;               /* monotonic seconds when it began */
};

static struct {
	xn_host *h;
	uv_timer_t timer, deadline;
	bool on;
	struct round *current;
	json_t *polling;          /* VM ref -> pid of the QEMU whose balloon polls guest stats */
} S;

/* ---- pure parsers ---------------------------------------------------- */

int xn_sampler_parse_stat(const char *text, double *busy, double *total, int max)
{
	int n = 0;
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long long v[10] = {0};
		int cpu;
		if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 5 ||
		    cpu < 0 || cpu >= max)
			continue;
		/* user nice system idle iowait irq softirq steal */
		busy[cpu] = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
		total[cpu] = busy[cpu] + (double)(v[3] + v[4]);
		if (cpu + 1 > n)
			n = cpu + 1;
	}
	return n;
}

long long xn_sampler_meminfo(const char *text, const char *field)
{
	size_t n = strlen(field);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, field, n) == 0 && p[n] == ':')
			return atoll(p + n + 1);
	return -1;
}

/* ---- small readers --------------------------------------------------- */

static double read_number(const char *path)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	if (!f)
		return NAN;
	double v = fgets(buf, sizeof(buf), f) ? strtod(buf, NULL) : NAN;
	fclose(f);
	return v;
}

/* A network device's counter (statistics/<name>), NAN if unreadable. */
static double netdev_stat(const char *dev, const char *name)
{
	XN_AUTOFREE char *path = xn_asprintf("/sys/class/net/%s/statistics/%s", dev, name);
	return read_number(path);
}

static void raw_set(json_t *raw, const char *key, double v)
{
	if (isfinite(v))
		json_object_set_new(raw, key, json_real(v));
}

static double raw_get(json_t *raw, const char *key)
{
	json_t *v = json_object_get(raw, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The rate of counter key between o's previous readings and cur. */
static double rate(xn_mowner *o, json_t *cur, double now, const char *key)
{
	double a = raw_get(o->raw, key), b = raw_get(cur, key), dt = now - o->raw_time;
	if (!isfinite(a) || !isfinite(b) || b < a || dt <= 0.5)
		return NAN;
	return (b - a) / dt;
}

static double mono_seconds(void)
{
	return (double)xn_now_ms() / 1000.0;
}

/* ---- the host -------------------------------------------------------- */

static void host_cpus(json_t *raw)
{
	XN_AUTOFREE char *text = xn_read_file("/proc/stat", NULL, NULL);
	static double busy[MAX_CPUS + 1], total[MAX_CPUS + 1];
	int n = text ? xn_sampler_parse_stat(text, busy, total, MAX_CPUS) : 0;
	for (int i = 0; i < n; i++) {
		char k[32];
		snprintf(k, sizeof(k), "cpu%d_busy", i);
		raw_set(raw, k, busy[i]);
		snprintf(k, sizeof(k), "cpu%d_total", i);
		raw_set(raw, k, total[i]);
	}
	json_object_set_new(raw, "ncpus", json_integer(n));
}

static void host_memory(json_t *live)
{
	XN_AUTOFREE char *text = xn_read_file("/proc/meminfo", NULL, NULL);
	if (!text)
		return;
	long long total = xn_sampler_meminfo(text, "MemTotal");
	long long avail = xn_sampler_meminfo(text, "MemAvailable");
	if (total >= 0)
		xn_ds_put(live, "memory_total_kib", (double)total, "KiB", 0, NAN, true,
			  "Total amount of memory in the host");
	if (avail >= 0)
		xn_ds_put(live, "memory_free_kib", (double)avail, "KiB", 0, NAN, true,
			  "Total amount of free memory");
	XN_AUTOFREE char *load = xn_read_file("/proc/loadavg", NULL, NULL);
	if (load)
		xn_ds_put(live, "loadavg", strtod(load, NULL), "(fraction)", NAN, NAN, true,
			  "Domain0 loadavg");
}

static void host_pifs(xn_host *h, json_t *raw)
{
	const char *k;
	json_t *pif;
	json_t *devs = json_array();
	json_object_foreach(xn_db_all(h->db, xn_model_class("PIF")), k, pif) {
		if (!xn_streq(json_string_value(json_object_get(pif, "host")), h->host_ref))
			continue;
		const char *dev = json_string_value(json_object_get(pif, "device"));
		if (!dev || !*dev || strchr(dev, '/'))
			continue;
		static const char *stats[] = {"rx_bytes", "tx_bytes", "rx_errors", "tx_errors"};
		for (size_t i = 0; i < XN_ARRAY_LEN(stats); i++) {
			XN_AUTOFREE char *key = xn_asprintf("pif_%s_%s", dev, stats[i]);
			raw_set(raw, key, netdev_stat(dev, stats[i]));
		}
		json_array_append_new(devs, json_string(dev));
	}
	json_object_set_new(raw, "pifs", devs);
}

static void host_rates(xn_mowner *o, json_t *raw, double now, json_t *live)
{
	int n = (int)json_integer_value(json_object_get(raw, "ncpus"));
	double sb = 0, st = 0;
	for (int i = 0; i < n; i++) {
		char b[32], t[32], name[16];
		snprintf(b, sizeof(b), "cpu%d_busy", i);
		snprintf(t, sizeof(t), "cpu%d_total", i);
		snprintf(name, sizeof(name), "cpu%d", i);
		double db = rate(o, raw, now, b), dt = rate(o, raw, now, t);
		if (!isfinite(db) || !isfinite(dt) || dt <= 0)
			continue;
		xn_ds_put(live, name, fmin(1.0, db / dt), "(fraction)", 0, 1, true,
			  "Physical cpu usage for cpu %d", i);
		sb += db;
		st += dt;
	}
	if (st > 0)
		xn_ds_put(live, "cpu_avg", fmin(1.0, sb / st), "(fraction)", 0, 1, true,
			  "Average physical cpu usage");
	double arx = 0, atx = 0;
	bool any = false;
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(raw, "pifs"), i, d) {
		const char *dev = json_string_value(d);
		static const struct {
			const char *stat, *ds, *units, *desc;
			bool standard;
		} m[] = {{"rx_bytes", "rx", "B/s", "Bytes per second received on physical interface %s", true},
			 {"tx_bytes", "tx", "B/s", "Bytes per second sent on physical interface %s", true},
			 {"rx_errors", "rx_errors", "err/s", "Receive errors per second on physical interface %s", false},
			 {"tx_errors", "tx_errors", "err/s", "Transmit errors per second on physical interface %s", false}};
		for (size_t k = 0; k < XN_ARRAY_LEN(m); k++) {
			XN_AUTOFREE char *key = xn_asprintf("pif_%s_%s", dev, m[k].stat);
			XN_AUTOFREE char *name = xn_asprintf("pif_%s_%s", dev, m[k].ds);
			double r = rate(o, raw, now, key);
			xn_ds_put(live, name, r, m[k].units, 0, NAN, m[k].standard, m[k].desc, dev);
			if (isfinite(r) && k < 2) {
				*(k == 0 ? &arx : &atx) += r;
				any = true;
			}
		}
	}
	if (any) {
		xn_ds_put(live, "pif_aggr_rx", arx, "B/s", 0, NAN, true,
			  "Bytes per second received on all physical interfaces");
		xn_ds_put(live, "pif_aggr_tx", atx, "B/s", 0, NAN, true,
			  "Bytes per second sent on all physical interfaces");
	}
}

/* ---- VMs: what is read on the loop ----------------------------------- */

/* CPU time of a thread in ns: schedstat's first field, else utime+stime. */
static double thread_ns(pid_t pid, pid_t tid)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	double v = read_number(path);
	if (isfinite(v))
		return v;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	XN_AUTOFREE char *text = xn_read_file(path, NULL, NULL);
	const char *p = text ? strrchr(text, ')') : NULL;
	unsigned long long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return NAN;
	return (double)(ut + st) * 1e9 / 100.0; /* USER_HZ */
}

static void vm_cpus(pid_t pid, json_t *raw)
{
	pid_t tids[MAX_VCPUS];
	int n = xn_qemu_vcpu_tids(pid, tids, MAX_VCPUS);
	for (int i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "cpu%d_ns", i);
		raw_set(raw, key, tids[i] ? thread_ns(pid, tids[i]) : NAN);
	}
	json_object_set_new(raw, "vcpus", json_integer(n > 0 ? n : 0));
}

static void vm_vifs(xn_host *h, const char *vm, json_t *raw)
{
	size_t i;
	json_t *v;
	const char *uuid = xn_db_str(h->db, vm, "uuid");
	json_t *devs = json_array();
	json_array_foreach(xn_db_field(h->db, vm, "VIFs"), i, v) {
		const char *vif = json_string_value(v);
		if (!xn_db_bool(h->db, vif, "currently_attached"))
			continue;
		const char *dev = xn_db_str(h->db, vif, "device");
		XN_AUTOFREE char *tap = xn_net_tap_name(uuid, dev);
		static const char *stats[] = {"rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
					      "rx_packets", "tx_packets"};
		for (size_t k = 0; k < XN_ARRAY_LEN(stats); k++) {
			XN_AUTOFREE char *key = xn_asprintf("tap%s_%s", dev, stats[k]);
			raw_set(raw, key, netdev_stat(tap, stats[k]));
		}
		json_array_append_new(devs, json_string(dev));
	}
	json_object_set_new(raw, "vifs", devs);
}

/* ---- VMs: QMP replies ------------------------------------------------ */

struct ask {
	struct round *r;
	char *vm;
	const char *what;
};

static void round_unref(struct round *r)
{
	if (--r->refs > 0)
		return;
	json_decref(r->vms);
	json_decref(r->host_raw);
	free(r);
}

/* A VBD's name in data sources: its device, else vd<letter> of its
 * userdevice ("vda" for 0), as the guest numbers virtio disks. */
static char *vbd_name(xn_host *h, const char *vbd)
{
	const char *dev = xn_db_str(h->db, vbd, "device");
	if (*dev)
		return xn_strdup(dev);
	long u = atol(xn_db_str(h->db, vbd, "userdevice"));
	return xn_asprintf("vd%c", (char)('a' + (u >= 0 && u < 26 ? u : 25)));
}

/* query-blockstats: the entries of devices vbd-<N> (their qdev path
 * names the device), by the VBD's data source name; "vbd_srs" maps that
 * name to the uuid of the SR its disk is on (per-SR sums). */
static void got_blockstats(struct round *r, const char *vm, json_t *raw, json_t *ret)
{
	size_t i;
	json_t *e;
	json_t *srs = json_object();
	json_array_foreach(ret, i, e) {
		const char *qdev = json_string_value(json_object_get(e, "qdev"));
		const char *p = qdev ? strstr(qdev, "vbd-") : NULL;
		if (!p)
			continue;
		char ud[16];
		snprintf(ud, sizeof(ud), "%ld", strtol(p + 4, NULL, 10));
		const char *vbd = xn_db_member_where(r->h->db, vm, "VBDs", "userdevice", ud);
		if (!vbd)
			continue;
		XN_AUTOFREE char *name = vbd_name(r->h, vbd);
		json_t *st = json_object_get(e, "stats");
		static const char *keys[] = {"rd_bytes", "wr_bytes", "rd_operations",
					     "wr_operations", "rd_total_time_ns", "wr_total_time_ns"};
		for (size_t k = 0; k < XN_ARRAY_LEN(keys); k++) {
			XN_AUTOFREE char *key = xn_asprintf("vbd_%s_%s", name, keys[k]);
			json_t *v = json_object_get(st, keys[k]);
			if (json_is_number(v))
				raw_set(raw, key, json_number_value(v));
		}
		const char *vdi = xn_db_str(r->h->db, vbd, "VDI");
		const char *sr = xn_ref_is_null(vdi) ? "" : xn_db_str(r->h->db, vdi, "SR");
		json_object_set_new(srs, name, json_string(*sr ? xn_db_str(r->h->db, sr, "uuid") : ""));
	}
	json_object_set_new(raw, "vbd_srs", srs);
}

/* The balloon's guest statistics, when the guest's driver reports them. */
static void got_guest_stats(json_t *raw, json_t *ret)
{
	json_t *free_mem = json_object_get(json_object_get(ret, "stats"), "stat-free-memory");
	if (json_integer_value(json_object_get(ret, "last-update")) <= 0 ||
	    !json_is_number(free_mem) || json_number_value(free_mem) >= NO_STAT)
		return;
	raw_set(raw, "guest_free", json_number_value(free_mem));
}

static void finish_round(struct round *r);

static void ignore_reply(void *ud, json_t *ret, const xn_error *err)
{
	(void)ud;
	(void)ret;
	(void)err;
}

static void on_reply(void *ud, json_t *ret, const xn_error *err)
{
	struct ask *a = ud;
	struct round *r = a->r;
	json_t *raw = json_object_get(r->vms, a->vm);
	if (err)
		xn_debug("metrics: %s of VM %s: %s", a->what, a->vm, err->message);
	if (!err && raw && !r->finished) {
		if (strcmp(a->what, "blockstats") == 0)
			got_blockstats(r, a->vm, raw, ret);
		else if (strcmp(a->what, "balloon") == 0)
			raw_set(raw, "balloon_actual", json_number_value(json_object_get(ret, "actual")));
		else if (strcmp(a->what, "guest-stats") == 0)
			got_guest_stats(raw, ret);
	}
	free(a->vm);
	free(a);
	if (--r->pending == 0 && r->asked && !r->finished)
		finish_round(r);
	round_unref(r);
}

static void ask(struct round *r, const char *vm, const char *what, const char *cmd, json_t *args)
{
	struct ask *a = xn_calloc(1, sizeof(*a));
	a->r = r;
	a->vm = xn_strdup(vm);
	a->what = what;
	r->refs++;
	r->pending++;
	xn_vm_qmp(r->h, vm, cmd, args, on_reply, a);
}

static void start_vm(struct round *r, const char *vm)
{
	xn_host *h = r->h;
	pid_t pid = xn_vm_qemu_pid(h, vm);
	if (pid <= 0)
		return;
	json_t *raw = json_object();
	json_object_set_new(r->vms, vm, raw);
	vm_cpus(pid, raw);
	vm_vifs(h, vm, raw);
	if (json_integer_value(json_object_get(S.polling, vm)) != pid) {
		/* the balloon polls the guest's memory statistics from now on */
		json_object_set_new(S.polling, vm, json_integer(pid));
		xn_vm_qmp(h, vm, "qom-set",
			  json_pack("{s:s,s:s,s:i}", "path", "/machine/peripheral/balloon0",
				    "property", "guest-stats-polling-interval", "value",
				    XN_METRICS_STEP),
			  ignore_reply, NULL);
	}
	ask(r, vm, "blockstats", "query-blockstats", NULL);
	ask(r, vm, "balloon", "query-balloon", NULL);
	ask(r, vm, "guest-stats", "qom-get",
	    json_pack("{s:s,s:s}", "path", "/machine/peripheral/balloon0", "property",
		      "guest-stats"));
}

/* ---- rates --------------------------------------------------------------- */

static void vm_cpu_rates(xn_mowner *o, json_t *raw, double now, json_t *live)
{
	int n = (int)json_integer_value(json_object_get(raw, "vcpus"));
	double sum = 0;
	int known = 0;
	for (int i = 0; i < n; i++) {
		char key[32], name[16];
		snprintf(key, sizeof(key), "cpu%d_ns", i);
		snprintf(name, sizeof(name), "cpu%d", i);
		double r = rate(o, raw, now, key) / 1e9;
		if (!isfinite(r))
			continue;
		r = fmin(1.0, r);
		xn_ds_put(live, name, r, "(fraction)", 0, 1, true, "CPU%d usage", i);
		sum += r;
		known++;
	}
	if (n > 0 && known == n)
		xn_ds_put(live, "cpu_usage", sum / n, "(fraction)", 0, 1, true, "Domain CPU usage");
	o->vcpus = n;
}

static void vm_memory(xn_host *h, const char *vm, json_t *raw, json_t *live)
{
	xn_ds_put(live, "memory", raw_get(raw, "balloon_actual"), "B", 0, NAN, true,
		  "Memory currently allocated to VM");
	json_int_t target = xn_db_int(h->db, vm, "memory_target");
	if (target <= 0)
		target = xn_db_int(h->db, vm, "memory_dynamic_max");
	if (target > 0)
		xn_ds_put(live, "memory_target", (double)target, "B", 0, NAN, true,
			  "Target of VM balloon driver");
	xn_ds_put(live, "memory_internal_free", raw_get(raw, "guest_free") / 1024.0, "KiB", 0,
		  NAN, true, "Memory free as reported by the guest's balloon driver");
}

/* Add v to sums[sr][key]. */
static void sum_add(json_t *sums, const char *sr, const char *key, double v)
{
	if (!*sr || !isfinite(v))
		return;
	json_t *o = json_object_get(sums, sr);
	if (!o) {
		o = json_object();
		json_object_set_new(sums, sr, o);
	}
	json_t *cur = json_object_get(o, key);
	json_object_set_new(o, key, json_real(v + (cur ? json_real_value(cur) : 0.0)));
}

static double latency_us(xn_mowner *o, json_t *raw, double now, const char *name,
			 const char *time_key, const char *ops_key)
{
	XN_AUTOFREE char *tk = xn_asprintf("vbd_%s_%s", name, time_key);
	XN_AUTOFREE char *ok = xn_asprintf("vbd_%s_%s", name, ops_key);
	double t = rate(o, raw, now, tk), n = rate(o, raw, now, ok);
	if (!isfinite(t) || !isfinite(n))
		return NAN;
	return n > 0 ? t / n / 1000.0 : 0.0;
}

static void vm_vbd_rates(xn_mowner *o, json_t *raw, double now, json_t *live, json_t *sums)
{
	const char *name;
	json_t *sr;
	json_object_foreach(json_object_get(raw, "vbd_srs"), name, sr) {
		const char *sru = json_string_value(sr);
		XN_AUTOFREE char *rk = xn_asprintf("vbd_%s_rd_bytes", name);
		XN_AUTOFREE char *wk = xn_asprintf("vbd_%s_wr_bytes", name);
		XN_AUTOFREE char *rok = xn_asprintf("vbd_%s_rd_operations", name);
		XN_AUTOFREE char *wok = xn_asprintf("vbd_%s_wr_operations", name);
		double rd = rate(o, raw, now, rk), wr = rate(o, raw, now, wk);
		double ro = rate(o, raw, now, rok), wo = rate(o, raw, now, wok);
		const struct {
			const char *ds, *units, *desc;
			double v;
		} m[] = {
			{"read", "B/s", "Reads from device %s, in B/s", rd},
			{"write", "B/s", "Writes to device %s, in B/s", wr},
			{"read_latency", "\u03bcs", "Read latency from device %s, in microseconds",
			 latency_us(o, raw, now, name, "rd_total_time_ns", "rd_operations")},
			{"write_latency", "\u03bcs", "Write latency from device %s, in microseconds",
			 latency_us(o, raw, now, name, "wr_total_time_ns", "wr_operations")},
			{"iops_read", "requests/s", "Read requests per second on device %s", ro},
			{"iops_write", "requests/s", "Write requests per second on device %s", wo},
			{"iops_total", "requests/s", "I/O requests per second on device %s", ro + wo},
			{"io_throughput_read", "MiB/s", "Data read from device %s, in MiB/s", rd / 1048576},
			{"io_throughput_write", "MiB/s", "Data written to device %s, in MiB/s", wr / 1048576},
			{"io_throughput_total", "MiB/s", "All I/O on device %s, in MiB/s", (rd + wr) / 1048576},
		};
		for (size_t k = 0; k < XN_ARRAY_LEN(m); k++) {
			XN_AUTOFREE char *ds = xn_asprintf("vbd_%s_%s", name, m[k].ds);
			xn_ds_put(live, ds, m[k].v, m[k].units, 0, NAN, true, m[k].desc, name);
			if (k != 2 && k != 3)
				sum_add(sums, sru, m[k].ds, m[k].v);
		}
	}
}

static void vm_vif_rates(xn_mowner *o, json_t *raw, double now, json_t *live)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(raw, "vifs"), i, d) {
		const char *dev = json_string_value(d);
		/* the tap's transmit is the guest's receive */
		const struct {
			const char *ds, *stat, *units, *desc;
			bool standard;
		} m[] = {{"rx", "tx_bytes", "B/s", "Bytes per second received on virtual interface number '%s'", true},
			 {"tx", "rx_bytes", "B/s", "Bytes per second transmitted on virtual interface number '%s'", true},
			 {"rx_errors", "tx_errors", "err/s", "Receive errors per second on virtual interface number '%s'", false},
			 {"tx_errors", "rx_errors", "err/s", "Transmit errors per second on virtual interface number '%s'", false}};
		for (size_t k = 0; k < XN_ARRAY_LEN(m); k++) {
			XN_AUTOFREE char *key = xn_asprintf("tap%s_%s", dev, m[k].stat);
			XN_AUTOFREE char *ds = xn_asprintf("vif_%s_%s", dev, m[k].ds);
			xn_ds_put(live, ds, rate(o, raw, now, key), m[k].units, 0, NAN, m[k].standard,
				  m[k].desc, dev);
		}
	}
}

/* Per-SR sums of the VBDs on them, host-owned as in xapi's iostat
 * plugin: <metric>_<first 8 digits of the SR uuid>. */
static void sr_sums(json_t *sums, json_t *live)
{
	const char *sr;
	json_t *o;
	json_object_foreach(sums, sr, o) {
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v) {
			XN_AUTOFREE char *name = xn_asprintf("%s_%.8s", k, sr);
			const char *units = strstr(k, "iops") ? "requests/s" :
					    strstr(k, "throughput") ? "MiB/s" : "B/s";
			xn_ds_put(live, name, json_real_value(v), units, 0, NAN, true,
				  "%s of the VBDs on SR %s", k, sr);
		}
	}
}

static void owner_take(xn_mowner *o, json_t *raw, double now, json_t *live, time_t t)
{
	json_decref(o->raw);
	o->raw = json_incref(raw);
	o->raw_time = now;
	json_decref(o->live);
	o->live = live;
	o->time = t;
}

static void finish_round(struct round *r)
{
	r->finished = true;
	if (S.current == r) {
		S.current = NULL;
		uv_timer_stop(&S.deadline);
	}
	xn_host *h = r->h;
	json_t *sums = json_object();
	const char *vm;
	json_t *raw;
	int running = 0;
	json_object_foreach(r->vms, vm, raw) {
		xn_mowner *o = xn_metrics_owner_vm(h, vm);
		json_t *live = json_object();
		vm_cpu_rates(o, raw, r->now, live);
		vm_memory(h, vm, raw, live);
		vm_vbd_rates(o, raw, r->now, live, sums);
		vm_vif_rates(o, raw, r->now, live);
		owner_take(o, raw, r->now, live, r->t);
		running++;
	}
	xn_mowner *host = xn_metrics_owner(xn_db_str(h->db, h->host_ref, "uuid"));
	if (host) {
		json_t *live = json_object();
		host_rates(host, r->host_raw, r->now, live);
		host_memory(live);
		sr_sums(sums, live);
		xn_ds_put(live, "running_domains", running, "count", 0, NAN, true,
			  "The total number of running domains per host");
		owner_take(host, r->host_raw, r->now, live, r->t);
	}
	json_decref(sums);
	xn_metrics_owners_prune(h);
	xn_metrics_sampled(h, r->t);
	round_unref(r);
}

/* ---- the timer ------------------------------------------------------------ */

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	if (S.current)
		finish_round(S.current);
}

static bool runs_here(xn_host *h, json_t *vm)
{
	const char *ps = json_string_value(json_object_get(vm, "power_state"));
	return (xn_streq(ps, "Running") || xn_streq(ps, "Paused")) &&
	       !json_is_true(json_object_get(vm, "is_control_domain")) &&
	       xn_streq(json_string_value(json_object_get(vm, "resident_on")), h->host_ref);
}

/* Milliseconds until the next multiple of the step (plus a little, so
 * the round is stamped with the multiple just passed). */
static uint64_t until_next(void)
{
	double now = xn_wall_time();
	double next = (floor(now / XN_METRICS_STEP) + 1) * XN_METRICS_STEP + 0.2;
	return (uint64_t)((next - now) * 1000.0);
}

static void on_tick(uv_timer_t *t)
{
	xn_host *h = S.h;
	uv_timer_start(t, on_tick, until_next(), 0);
	if (S.current)
		finish_round(S.current);
	struct round *r = xn_calloc(1, sizeof(*r));
	r->h = h;
	r->refs = 1;
	r->t = (time_t)(floor(xn_wall_time() / XN_METRICS_STEP) * XN_METRICS_STEP);
	r->now = mono_seconds();
	r->vms = json_object();
	r->host_raw = json_object();
	host_cpus(r->host_raw);
	host_pifs(h, r->host_raw);
	S.current = r;
	const char *k;
	json_t *vm;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VM")), k, vm)
		if (runs_here(h, vm))
			start_vm(r, k);
	r->asked = true;
	if (r->pending == 0)
		finish_round(r);
	else
		uv_timer_start(&S.deadline, on_deadline, ROUND_TIMEOUT_MS, 0);
	/* VMs no longer running poll nothing any more */
	void *tmp;
	json_object_foreach_safe(S.polling, tmp, k, vm)
		if (!xn_vm_qemu_pid(h, k))
			json_object_del(S.polling, k);
}

void xn_sampler_start(xn_host *h)
{
	S.h = h;
	S.on = true;
	S.polling = json_object();
	uv_timer_init(h->loop, &S.timer);
	uv_timer_init(h->loop, &S.deadline);
	uv_unref((uv_handle_t *)&S.timer);
	uv_unref((uv_handle_t *)&S.deadline);
	uv_timer_start(&S.timer, on_tick, until_next(), 0);
}

void xn_sampler_stop(void)
{
	if (!S.on)
		return;
	S.on = false;
	uv_timer_stop(&S.timer);
	uv_timer_stop(&S.deadline);
}
