/* Unit tests of src/metrics/: the /proc parsers, data-source names and
 * numbers, the RRD store against real librrd files in a temporary
 * directory (samples at aligned times read back exactly, a new data
 * source added without losing the old series, forgetting one), and the
 * xport document /rrd_updates sends. */
#include "metrics/metrics_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "uvwait.h"
#include "util/fs.h"

TEST(parse_proc_stat)
{
	const char *text = "cpu  10 0 10 80 0 0 0 0 0 0\n"
			   "cpu0 5 1 4 40 2 1 1 1 0 0\n"
			   "cpu1 4 0 6 38 0 0 0 0 0 0\nintr 1 2\n";
	double busy[4] = {0}, total[4] = {0};
	CHECK(xn_sampler_parse_stat(text, busy, total, 4) == 2);
	CHECK(busy[0] == 13 && total[0] == 55);
	CHECK(busy[1] == 10 && total[1] == 48);
	CHECK(xn_sampler_meminfo("MemTotal:  1000 kB\nMemAvailable:   400 kB\n", "MemAvailable") == 400);
	CHECK(xn_sampler_meminfo("MemTotal:  1000 kB\n", "MemFree") == -1);
}

TEST(names_and_numbers)
{
	char *a = xn_ds_rrd_name("vbd_vda_read");
	CHECK_STR(a, "vbd_vda_read");
	char *b = xn_ds_rrd_name("vbd_vda_io_throughput_total");
	char *c = xn_ds_rrd_name("vbd_vdb_io_throughput_total");
	CHECK(strlen(b) == 19 && b[0] == 'x' && strcmp(b, c) != 0);
	free(a);
	free(b);
	free(c);
	char buf[32];
	CHECK_STR(xn_ds_format(0.0, buf, sizeof(buf)), "0.0");
	CHECK_STR(xn_ds_format(NAN, buf, sizeof(buf)), "NaN");
	CHECK_STR(xn_ds_format(INFINITY, buf, sizeof(buf)), "Infinity");
	CHECK_STR(xn_ds_format(134217728, buf, sizeof(buf)), "1.3422e+08");
	CHECK_STR(xn_ds_format(0.25, buf, sizeof(buf)), "0.25");
	json_t *set = json_object();
	xn_ds_put(set, "cpu0", 0.5, "(fraction)", 0, 1, true, "CPU%d usage", 0);
	xn_ds_put(set, "nothing", NAN, "B", 0, NAN, true, "no reading");
	CHECK(json_object_size(set) == 1);
	json_t *rec = xn_ds_record("cpu0", json_object_get(set, "cpu0"), true, 0.5);
	CHECK_STR(json_string_value(json_object_get(rec, "name_description")), "CPU0 usage");
	CHECK(json_real_value(json_object_get(rec, "max")) == 1.0);
	json_decref(rec);
	json_decref(set);
}

static xn_rrd_table *fetched;
static bool got;

static void on_fetch(void *ud, xn_rrd_table *t, xn_error *err)
{
	(void)ud;
	CHECK(err == NULL);
	xn_error_free(err);
	fetched = t;
	got = true;
}

static double cell(xn_rrd_table *t, size_t row, const char *entry)
{
	for (size_t c = 0; c < t->ncols; c++)
		if (strcmp(t->legend[c], entry) == 0)
			return t->data[row * t->ncols + c];
	return -12345;
}

static xn_rrd_table *fetch(xn_rrd_store *s, long start, long interval, const char *cf)
{
	xn_rrd_want w = {(char *)"u1", (char *)"vm:u1:"};
	got = false;
	fetched = NULL;
	xn_rrd_fetch(s, &w, 1, start, interval, cf, on_fetch, NULL);
	wait_for(&got, 10000);
	return fetched;
}

TEST(rrd_store_round_trip)
{
	char dir[] = "/tmp/xenia-unit-rrd-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	uv_loop_init(&loop);
	xn_rrd_store *s = xn_rrd_store_open(&loop, dir, NULL);
	CHECK(s != NULL);
	time_t t0 = time(NULL) / 5 * 5 - 300;
	for (int i = 0; i < 10; i++) {
		json_t *live = json_object();
		xn_ds_put(live, "cpu0", i / 10.0, "(fraction)", 0, 1, true, "CPU0 usage");
		xn_ds_put(live, "vbd_vda_io_throughput_total", i * 2.0, "MiB/s", 0, NAN, true, "x");
		xn_ds_put(live, "vif_0_rx_errors", 7, "err/s", 0, NAN, false, "not archived");
		if (i >= 5) /* a hot-plugged disk appears half-way */
			xn_ds_put(live, "vbd_vdb_write", 1000.0 * i, "B/s", 0, NAN, true, "w");
		xn_rrd_update(s, "u1", t0 + 5 * i, live);
		json_decref(live);
	}
	CHECK(xn_rrd_has(s, "u1", "cpu0") && !xn_rrd_has(s, "u1", "vif_0_rx_errors"));
	xn_rrd_table *t = fetch(s, t0 - 1, 5, "AVERAGE");
	CHECK(t && t->step == 5 && t->end == t0 + 45 && t->nrows == 10);
	CHECK(t->times[0] == t0 + 45 && t->times[9] == t0);
	for (int i = 0; i < 10; i++) {
		CHECK(fabs(cell(t, 9 - i, "AVERAGE:vm:u1:cpu0") - i / 10.0) < 1e-9);
		CHECK(cell(t, 9 - i, "AVERAGE:vm:u1:vbd_vda_io_throughput_total") == i * 2.0);
		double w = cell(t, 9 - i, "AVERAGE:vm:u1:vbd_vdb_write");
		CHECK(i >= 5 ? w == 1000.0 * i : isnan(w));
	}
	size_t len;
	char *xml = xn_rrd_updates_xml(t, &len);
	CHECK(xn_str_has_prefix(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xport><meta><start>"));
	CHECK(strstr(xml, "<step>5</step>") && strstr(xml, "<rows>10</rows><columns>3</columns>"));
	CHECK(strstr(xml, "<entry>AVERAGE:vm:u1:cpu0</entry>"));
	CHECK(strstr(xml, "<v>0.9</v>") && strstr(xml, "<v>NaN</v>"));
	free(xml);
	xn_rrd_table_free(t);
	/* without cf, the minute archive brings MIN and MAX along */
	t = fetch(s, -3600, 60, NULL);
	CHECK(t && t->step == 60 && t->ncols == 9);
	xn_rrd_table_free(t);
	/* record one more, forget one: the files follow */
	json_t *ds = json_pack("{s:f,s:s,s:b,s:s}", "value", 7.0, "units", "err/s", "standard", 0,
			       "description", "x");
	xn_rrd_enable(s, "u1", "vif_0_rx_errors", ds);
	json_decref(ds);
	CHECK(xn_rrd_has(s, "u1", "vif_0_rx_errors"));
	CHECK(xn_rrd_forget(s, "u1", "cpu0") == 0 && xn_rrd_forget(s, "u1", "cpu0") == -1);
	t = fetch(s, t0 - 1, 5, "AVERAGE");
	CHECK(t && cell(t, 0, "AVERAGE:vm:u1:cpu0") == -12345);
	CHECK(cell(t, 0, "AVERAGE:vm:u1:vbd_vdb_write") == 9000.0); /* kept through rewrites */
	xn_rrd_table_free(t);
	/* a second store reads the descriptions back (a daemon restart) */
	xn_rrd_store *s2 = xn_rrd_store_open(&loop, dir, NULL);
	CHECK(xn_rrd_has(s2, "u1", "vif_0_rx_errors") && !xn_rrd_has(s2, "u1", "cpu0"));
	xn_rrd_remove(s, "u1");
	t = fetch(s, t0 - 1, 5, "AVERAGE");
	CHECK(t && t->nrows == 0);
	xn_rrd_table_free(t);
	XN_AUTOFREE char *path = xn_asprintf("%s/u1.rrd", dir);
	CHECK(access(path, F_OK) != 0);
	xn_rrd_store_close(s);
	xn_rrd_store_close(s2);
	xn_rm_rf(dir, NULL);
}

int main(void)
{
	RUN(parse_proc_stat);
	RUN(names_and_numbers);
	RUN(rrd_store_round_trip);
	CHECK_EXIT();
}
