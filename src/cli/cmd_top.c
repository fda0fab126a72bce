/* cmd_top.c: `xe top`, xentop for Xenia: one row for the host and one
 * per running VM, with xentop's columns NAME STATE CPU(sec) CPU(%)
 * MEM(k) MEM(%) MAXMEM(k) VCPUS NETS NETTX(k) NETRX(k) VBDS VBD_RD
 * VBD_WR, refreshed every delay= seconds.
 *
 * Each frame reads the daemon's public interfaces only: GET /metrics
 * (Prometheus text: vCPU seconds, the last sample's CPU use, memory,
 * NIC bytes and disk requests) and the VM records for names and states.
 * CPU(%) is the last 5-second sample's use of all the VM's vCPUs (100
 * per busy vCPU, as in xentop); NETTX/NETRX are kilobytes and
 * VBD_RD/VBD_WR requests since the VM started. The host's row shows the
 * whole machine (its CPUs' busy time and use, used memory, its PIFs).
 *
 * On a terminal the view is drawn with ncurses: keys s (next column),
 * n c m v t (NAME, CPU(%), MEM, VCPUS, CPU(sec)) sort, q quits.
 * Batch mode (-b, or without a terminal) prints plain frames, one after
 * the other, iterations= (-i) of them (default: until interrupted). */
#include <curses.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

enum col { C_NAME, C_STATE, C_CPUS, C_CPUP, C_MEM, C_MEMP, C_MAXMEM, C_VCPUS, C_NETS, C_NETTX,
	   C_NETRX, C_VBDS, C_VBDRD, C_VBDWR, NCOLS };

static const char *const col_names[NCOLS] = {
	"NAME", "STATE", "CPU(sec)", "CPU(%)", "MEM(k)", "MEM(%)", "MAXMEM(k)", "VCPUS", "NETS",
	"NETTX(k)", "NETRX(k)", "VBDS", "VBD_RD", "VBD_WR"};
static const int col_width[NCOLS] = {10, 6, 10, 6, 10, 6, 10, 5, 4, 8, 8, 4, 8, 8};

/* One row: the name and state, and numbers for the rest. */
struct row {
	char name[64], state[8];
	double v[NCOLS];
};

/* ---- reading /metrics ------------------------------------------------------ */

/* The value of label key in a {k="v",...} text (caller frees), or NULL. */
static char *label(const char *labels, const char *key)
{
	XN_AUTOFREE char *pat = xn_asprintf("%s=\"", key);
	const char *p = labels;
	while ((p = strstr(p, pat)) && p > labels && p[-1] != '{' && p[-1] != ',')
		p++;
	if (!p)
		return NULL;
	p += strlen(pat);
	xn_buf b = {0};
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1])
			p++;
		xn_buf_append(&b, *p == 'n' && p[-1] == '\\' ? "\n" : p, 1);
	}
	return b.data ? xn_buf_steal(&b) : xn_strdup("");
}

/* Add v to obj[key]. */
static void add(json_t *obj, const char *key, double v)
{
	json_t *cur = json_object_get(obj, key);
	json_object_set_new(obj, key, json_real(v + (cur ? json_number_value(cur) : 0.0)));
}

static json_t *entity(json_t *all, const char *uuid)
{
	json_t *e = json_object_get(all, uuid);
	if (!e) {
		e = json_object();
		json_object_set_new(all, uuid, e);
	}
	return e;
}

/* The metrics of one /metrics text: uuid -> {family: sum, family#: count}. */
static json_t *parse_metrics(const char *text)
{
	json_t *all = json_object();
	XN_AUTOFREE char *copy = xn_strdup(text);
	for (char *save, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || !xn_str_has_prefix(line, "xenia_"))
			continue;
		char *brace = strchr(line, '{'), *sp = strrchr(line, ' ');
		if (!brace || !sp || sp < brace)
			continue;
		XN_AUTOFREE char *fam = xn_strndup(line, (size_t)(brace - line));
		XN_AUTOFREE char *labels = xn_strndup(brace, (size_t)(sp - brace));
		XN_AUTOFREE char *uuid = label(labels, "vm");
		if (!uuid)
			uuid = label(labels, "host");
		if (!uuid || strcmp(fam, "xenia_data_source") == 0)
			continue;
		json_t *e = entity(all, uuid);
		add(e, fam, strtod(sp + 1, NULL));
		XN_AUTOFREE char *count = xn_asprintf("%s#", fam);
		add(e, count, 1);
	}
	return all;
}

static double get(json_t *e, const char *key)
{
	json_t *v = json_object_get(e, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- rows --------------------------------------------------------------- */

static void host_row(struct row *r, json_t *m, json_t *host)
{
	snprintf(r->name, sizeof(r->name), "%s",
		 json_string_value(json_object_get(host, "name_label")) ?: "host");
	snprintf(r->state, sizeof(r->state), "-----r");
	double total = get(m, "xenia_host_memory_total_bytes");
	double used = total - get(m, "xenia_host_memory_free_bytes");
	r->v[C_CPUS] = get(m, "xenia_host_cpu_busy_seconds_total");
	r->v[C_CPUP] = get(m, "xenia_host_cpu_usage_ratio") * 100;
	r->v[C_MEM] = used / 1024;
	r->v[C_MEMP] = used / total * 100;
	r->v[C_MAXMEM] = total / 1024;
	r->v[C_VCPUS] = get(m, "xenia_host_cpu_usage_ratio#");
	r->v[C_NETS] = get(m, "xenia_pif_transmit_bytes_total#");
	r->v[C_NETTX] = get(m, "xenia_pif_transmit_bytes_total") / 1024;
	r->v[C_NETRX] = get(m, "xenia_pif_receive_bytes_total") / 1024;
	r->v[C_VBDS] = r->v[C_VBDRD] = r->v[C_VBDWR] = NAN;
}

static void vm_row(struct row *r, json_t *m, json_t *vm, double host_total)
{
	snprintf(r->name, sizeof(r->name), "%s",
		 json_string_value(json_object_get(vm, "name_label")) ?: "");
	const char *ps = json_string_value(json_object_get(vm, "power_state"));
	snprintf(r->state, sizeof(r->state), "%s", xn_streq(ps, "Paused") ? "--p---" : "-----r");
	double vcpus = get(m, "xenia_vm_vcpus");
	r->v[C_CPUS] = get(m, "xenia_vm_cpu_seconds_total");
	r->v[C_CPUP] = get(m, "xenia_vm_cpu_usage_ratio") * vcpus * 100;
	r->v[C_MEM] = get(m, "xenia_vm_memory_bytes") / 1024;
	r->v[C_MEMP] = get(m, "xenia_vm_memory_bytes") / host_total * 100;
	r->v[C_MAXMEM] = get(m, "xenia_vm_memory_max_bytes") / 1024;
	r->v[C_VCPUS] = vcpus;
	r->v[C_NETS] = get(m, "xenia_vm_vif_transmit_bytes_total#");
	r->v[C_NETTX] = get(m, "xenia_vm_vif_transmit_bytes_total") / 1024;
	r->v[C_NETRX] = get(m, "xenia_vm_vif_receive_bytes_total") / 1024;
	r->v[C_VBDS] = get(m, "xenia_vm_vbd_read_requests_total#");
	r->v[C_VBDRD] = get(m, "xenia_vm_vbd_read_requests_total");
	r->v[C_VBDWR] = get(m, "xenia_vm_vbd_write_requests_total");
	for (int c = C_NETS; c < NCOLS; c++)
		if (isnan(r->v[c]))
			r->v[c] = 0; /* no NIC or disk: none of their counters */
}

static int sort_col;

static int cmp_rows(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (sort_col == C_NAME)
		return strcasecmp(x->name, y->name);
	if (sort_col == C_STATE)
		return strcmp(x->state, y->state);
	double u = isnan(x->v[sort_col]) ? -1 : x->v[sort_col];
	double w = isnan(y->v[sort_col]) ? -1 : y->v[sort_col];
	return u < w ? 1 : u > w ? -1 : strcasecmp(x->name, y->name);
}

/* The rows of one frame (*n of them) and the header lines in *head. */
static struct row *frame(xe_ctx *ctx, size_t *n, xn_buf *head, xn_error **err)
{
	size_t len;
	XN_AUTOFREE char *text = xe_http_get(ctx->conn, "/metrics", &len, err);
	json_t *vms = text ? xe_call(ctx->conn, "VM.get_all_records", NULL, err) : NULL;
	json_t *hosts = vms ? xe_call(ctx->conn, "host.get_all_records", NULL, err) : NULL;
	if (!hosts) {
		json_decref(vms);
		return NULL;
	}
	json_t *m = parse_metrics(text);
	struct row *rows = xn_calloc(json_object_size(vms) + json_object_size(hosts) + 1,
				     sizeof(*rows));
	*n = 0;
	const char *ref;
	json_t *rec;
	double total = NAN;
	json_object_foreach(hosts, ref, rec) {
		json_t *hm = json_object_get(m, json_string_value(json_object_get(rec, "uuid")));
		if (!hm)
			continue;
		host_row(&rows[(*n)++], hm, rec);
		total = get(hm, "xenia_host_memory_total_bytes");
		xn_buf_printf(head, "Mem: %.0fk total, %.0fk used, %.0fk free    CPUs: %.0f\n",
			      total / 1024, rows[*n - 1].v[C_MEM],
			      get(hm, "xenia_host_memory_free_bytes") / 1024, rows[*n - 1].v[C_VCPUS]);
	}
	int running = 0, paused = 0;
	json_object_foreach(vms, ref, rec) {
		json_t *vm = json_object_get(m, json_string_value(json_object_get(rec, "uuid")));
		if (!vm || json_is_true(json_object_get(rec, "is_control_domain")))
			continue;
		vm_row(&rows[(*n)++], vm, rec, total);
		*(rows[*n - 1].state[2] == 'p' ? &paused : &running) += 1;
	}
	time_t now = time(NULL);
	char clock[16];
	strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&now));
	XN_AUTOFREE char *mem = xn_buf_steal(head);
	xn_buf_printf(head, "xe top - %s   Xenia\n%d domains: %d running, %d paused\n%s", clock,
		      running + paused, running, paused, mem ? mem : "");
	qsort(rows, *n, sizeof(*rows), cmp_rows);
	json_decref(m);
	json_decref(vms);
	json_decref(hosts);
	return rows;
}

static void format_row(xn_buf *b, const struct row *r, bool header)
{
	for (int c = 0; c < NCOLS; c++) {
		const char *sep = c ? " " : "";
		if (header) {
			xn_buf_printf(b, "%s%*s", sep, col_width[c], col_names[c]);
		} else if (c == C_NAME) {
			xn_buf_printf(b, "%s%*.*s", sep, col_width[c], col_width[c], r->name);
		} else if (c == C_STATE) {
			xn_buf_printf(b, "%s%*s", sep, col_width[c], r->state);
		} else if (isnan(r->v[c])) {
			xn_buf_printf(b, "%s%*s", sep, col_width[c], "n/a");
		} else {
			int prec = c == C_CPUP || c == C_MEMP ? 1 : 0;
			xn_buf_printf(b, "%s%*.*f", sep, col_width[c], prec, r->v[c]);
		}
	}
	xn_buf_puts(b, "\n");
}

/* The whole frame as text (caller frees). */
static char *render(xe_ctx *ctx, xn_error **err)
{
	size_t n;
	xn_buf head = {0};
	XN_AUTOFREE struct row *rows = frame(ctx, &n, &head, err);
	if (!rows) {
		xn_buf_reset(&head);
		return NULL;
	}
	format_row(&head, NULL, true);
	for (size_t i = 0; i < n; i++)
		format_row(&head, &rows[i], false);
	return xn_buf_steal(&head);
}

/* ---- the two modes ------------------------------------------------------------ */

static int batch(xe_ctx *ctx, long iterations, double delay, xn_error **err)
{
	for (long i = 0; iterations <= 0 || i < iterations; i++) {
		if (i)
			usleep((useconds_t)(delay * 1e6));
		XN_AUTOFREE char *text = render(ctx, err);
		if (!text)
			return -1;
		fprintf(ctx->out, "%s%s", i ? "\n" : "", text);
		fflush(ctx->out);
	}
	return 0;
}

static int key_column(int ch)
{
	switch (ch) {
	case 'n': return C_NAME;
	case 'c': return C_CPUP;
	case 't': return C_CPUS;
	case 'm': return C_MEM;
	case 'v': return C_VCPUS;
	case 'r': return C_VBDRD;
	case 'w': return C_VBDWR;
	case 'x': return C_NETTX;
	default: return -1;
	}
}

static int interactive(xe_ctx *ctx, long iterations, double delay, xn_error **err)
{
	initscr();
	cbreak();
	noecho();
	curs_set(0);
	int rc = 0;
	for (long i = 0; iterations <= 0 || i < iterations; i++) {
		XN_AUTOFREE char *text = render(ctx, err);
		if (!text) {
			rc = -1;
			break;
		}
		erase();
		mvaddstr(0, 0, text);
		mvprintw(LINES - 1, 0, "sort: %s  (s: next column, n c t m v r w x: sort by, q: quit)",
			 col_names[sort_col]);
		refresh();
		timeout((int)(delay * 1000));
		int ch = getch();
		if (ch == 'q' || ch == 'Q')
			break;
		if (ch == 's')
			sort_col = (sort_col + 1) % NCOLS;
		else if (key_column(ch) >= 0)
			sort_col = key_column(ch);
	}
	endwin();
	return rc;
}

/* sort=: a column's name (case-insensitive, with or without "(k)", "(%)"
 * and the like), or -1. */
static int parse_sort(const char *s)
{
	for (int c = 0; c < NCOLS; c++) {
		size_t n = strcspn(col_names[c], "(");
		if (strcasecmp(s, col_names[c]) == 0 ||
		    (strlen(s) == n && strncasecmp(s, col_names[c], n) == 0 && c != C_CPUS))
			return c;
	}
	return -1;
}

int xe_cmd_top(xe_ctx *ctx, xn_error **err)
{
	const char *it = xe_arg(ctx->args, "iterations"), *d = xe_arg(ctx->args, "delay");
	const char *s = xe_arg(ctx->args, "sort");
	char *end = NULL;
	long iterations = it ? strtol(it, &end, 10) : 0;
	if (it && (*end || iterations < 1))
		return xe_fail(err, "iterations= must be a whole number of at least 1, not '%s'", it);
	double delay = d ? strtod(d, &end) : 3.0;
	if (d && (*end || !(delay >= 0.5 && delay <= 3600)))
		return xe_fail(err, "delay= must be a number of seconds from 0.5 to 3600, not '%s'", d);
	sort_col = s ? parse_sort(s) : C_NAME;
	if (sort_col < 0)
		return xe_fail(err, "sort= must be one of the columns (NAME, STATE, CPU(sec), CPU, "
				    "MEM, MEM(%%), MAXMEM, VCPUS, NETS, NETTX, NETRX, VBDS, VBD_RD, "
				    "VBD_WR), not '%s'", s);
	if (xe_arg_flag(ctx->args, "batch") || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))
		return batch(ctx, iterations, delay, err);
	return interactive(ctx, iterations, delay, err);
}
