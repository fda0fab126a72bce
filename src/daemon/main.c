/* main.c: xeniad, the host daemon.
 *
 *   xeniad --data-dir DIR --socket PATH [--listen ADDR:PORT [--plain-http]]
 *          [--images DIR] [--web DIR] [--shutdown-timeout SECONDS] [--debug]
 *
 * Opens the object store, creates or refreshes this host's records,
 * re-attaches to the VMs that are running, and serves the XenAPI until
 * SIGTERM or SIGINT. Stopping the daemon never stops a VM. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/static.h"
#include "console/console.h"
#include "engine/qemu_proc.h"
#include "metrics/metrics.h"
#include "net/net.h"
#include "storage/storage.h"
#include "storage/vdi_transfer.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "vm/vm.h"
#include "vm/xva.h"

static void usage(FILE *f)
{
	fputs("usage: xeniad --data-dir DIR --socket PATH [--listen ADDR:PORT [--plain-http]]\n"
	      "              [--images DIR] [--web DIR] [--shutdown-timeout SECONDS]\n"
	      "              [--session-timeout SECONDS] [--http-idle-timeout SECONDS]\n"
	      "              [--debug]\n"
	      "  --listen serves HTTPS (certificate DATA/xapi-ssl.pem, self-signed on first\n"
	      "  start); --plain-http serves HTTP instead, on a loopback address only.\n", f);
}

static char *absolute(const char *p)
{
	char buf[PATH_MAX];
	if (p[0] == '/')
		return xn_strdup(p);
	if (!getcwd(buf, sizeof(buf)))
		return xn_strdup(p);
	return xn_asprintf("%s/%s", buf, p);
}

/* Default images (or web) directory: build/images beside the binary. */
static char *beside_binary(const char *name)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return xn_asprintf("build/%s", name);
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	return xn_asprintf("%s/%s", exe, name);
}

static xn_host host;
static uv_signal_t sigterm, sigint;

static void on_signal(uv_signal_t *s, int signum)
{
	xn_info("xeniad: signal %d: stopping (running VMs keep running)", signum);
	xn_metrics_stop();
	xn_vms_detach_all(&host);
	xn_proc_stop_helpers();
	xn_api_stop(host.api);
	uv_stop(s->loop);
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"socket", required_argument, NULL, 's'},
		{"listen", required_argument, NULL, 'l'},
		{"images", required_argument, NULL, 'i'},
		{"web", required_argument, NULL, 'w'},
		{"plain-http", no_argument, NULL, 'P'},
		{"session-timeout", required_argument, NULL, 'S'},
		{"http-idle-timeout", required_argument, NULL, 'I'},
		{"shutdown-timeout", required_argument, NULL, 't'},
		{"debug", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	host.clean_shutdown_timeout_ms = 60000;
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (c) {
		case 'd': host.data_dir = absolute(optarg); break;
		case 's': host.socket_path = absolute(optarg); break;
		case 'l': host.listen = xn_strdup(optarg); break;
		case 'i': host.images_dir = absolute(optarg); break;
		case 'w': host.web_dir = absolute(optarg); break;
		case 'P': host.listen_plain = true; break;
		case 'S': host.session_timeout_ms = (uint64_t)atoll(optarg) * 1000; break;
		case 'I': xn_http_set_idle_timeout((uint64_t)atoll(optarg) * 1000); break;
		case 't': host.clean_shutdown_timeout_ms = (unsigned)atoi(optarg) * 1000; break;
		case 'D': xn_log_set_level(XN_LOG_DEBUG); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!host.data_dir || !host.socket_path || optind != argc) {
		usage(stderr);
		return -1;
	}
	if (!host.images_dir)
		host.images_dir = beside_binary("images");
	if (!host.web_dir)
		host.web_dir = beside_binary("web");
	return 0;
}

static int start(xn_error **err)
{
	if (xn_mkdir_p(host.data_dir, 0700, err) < 0)
		return -1;
	XN_AUTOFREE char *sockdir = xn_strdup(host.socket_path);
	char *slash = strrchr(sockdir, '/');
	if (slash && slash != sockdir) {
		*slash = '\0';
		if (xn_mkdir_p(sockdir, 0755, err) < 0)
			return -1;
	}
	host.run_dir = xn_asprintf("%s/run", host.data_dir);
	host.engine = xn_engine_detect();
	host.qemu_binary = xn_strdup("qemu-system-x86_64");
	XN_AUTOFREE char *dbpath = xn_asprintf("%s/xapi.db", host.data_dir);
	void *be = xn_db_sqlite_open(dbpath, err);
	if (!be)
		return -1;
	host.db = xn_db_open(&xn_db_sqlite_ops, be, err);
	if (!host.db)
		return -1;
	host.api = xn_api_new(&host);
	xn_events_init(host.api, &host);
	xn_sessions_init(&host);
	xn_vm_register(host.api);
	xn_storage_register(host.api);
	xn_net_register(host.api);
	xn_metrics_register(host.api);
	xn_consoles_init(&host);
	xn_static_init(&host);
	xn_xva_register(&host);
	if (xn_vdi_transfer_init(&host, err) < 0)
		return -1;
	if (xn_host_init_records(&host, err) < 0 || xn_accounts_init(&host, err) < 0 ||
	    xn_storage_init(&host, err) < 0 || xn_net_init(&host, err) < 0 ||
	    xn_templates_init(&host, err) < 0 || xn_vms_init(&host, err) < 0 ||
	    xn_nat_init(&host, err) < 0 || xn_metrics_init(&host, err) < 0 ||
	    xn_api_listen(host.api, err) < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	xn_model_init();
	host.loop = uv_default_loop();
	XN_AUTOERR xn_error *err = NULL;
	if (start(&err) < 0) {
		xn_error_log("xeniad: %s", err->message);
		return 1;
	}
	uv_signal_init(host.loop, &sigterm);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_init(host.loop, &sigint);
	uv_signal_start(&sigint, on_signal, SIGINT);
	xn_info("xeniad: serving on %s%s%s (engine %s, data in %s)", host.socket_path,
		host.listen ? " and " : "", host.listen ? host.listen : "", host.engine,
		host.data_dir);
	uv_run(host.loop, UV_RUN_DEFAULT);
	xn_info("xeniad: stopped");
	return 0;
}
