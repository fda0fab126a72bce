/* metrics.h: performance metrics, as xapi's rrdd keeps them.
 *
 * Every 5 seconds the daemon samples the host (CPUs, memory, load,
 * PIFs, SRs) and each running VM (vCPUs, memory, disks, NICs) from
 * cheap sources (/proc, QMP, the taps' counters), archives the samples
 * in one RRD file per owner (librrd, xapi's archives: 5 s for 10
 * minutes, 1 min for 2 hours, 1 h for a week, 1 day for a year) under
 * DATA/rrd, keeps VM_metrics and host_metrics current, and serves them
 * through xapi's interfaces: {VM,host}.get_data_sources /
 * query_data_source / record_data_source / forget_data_source_archives,
 * GET /rrd_updates, and a Prometheus text endpoint GET /metrics. A
 * VM's RRD goes with the VM. */
#ifndef XN_METRICS_H
#define XN_METRICS_H

#include "api/api.h"

/* The data-source messages. */
void xn_metrics_register(xn_api *api);
/* Open the RRD store, serve the HTTP endpoints, start sampling (unless
 * the environment has XENIA_NO_SAMPLING=1: benchmarks' baseline). */
int xn_metrics_init(xn_host *h, xn_error **err);
/* The daemon is stopping: no more samples. */
void xn_metrics_stop(void);

#endif
