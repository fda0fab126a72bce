/* ds.c: data sources as values with xapi's descriptions (metrics_int.h):
 * how a sample names and describes them, their XenAPI data_source
 * records, their names inside RRD files and their numbers on the wire. */
#include "metrics/metrics_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static json_t *bound(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

void xn_ds_put(json_t *set, const char *name, double value, const char *units, double min,
	       double max, bool standard, const char *fmt, ...)
{
	if (!isfinite(value))
		return; /* no reading: the source is absent from this sample */
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *desc = xn_vasprintf(fmt, ap);
	va_end(ap);
	json_object_set_new(set, name,
			    json_pack("{s:f,s:s,s:o,s:o,s:b,s:s}", "value", value, "units", units,
				      "min", bound(min), "max", bound(max), "standard", standard,
				      "description", desc));
}

/* JSON has no infinity: an unbounded limit is shown as the largest
 * double (xe prints it as "inf"). */
static double limit(json_t *ds, const char *key, double unbounded)
{
	json_t *v = json_object_get(ds, key);
	return json_is_number(v) ? json_number_value(v) : unbounded;
}

json_t *xn_ds_record(const char *name, json_t *ds, bool enabled, double value)
{
	const char *units = json_string_value(json_object_get(ds, "units"));
	const char *desc = json_string_value(json_object_get(ds, "description"));
	return json_pack("{s:s,s:s,s:b,s:b,s:s,s:f,s:f,s:f}", "name_label", name,
			 "name_description", desc ? desc : "description not available",
			 "enabled", enabled, "standard",
			 json_is_true(json_object_get(ds, "standard")), "units",
			 units ? units : "unknown", "min", limit(ds, "min", -1.7976931348623157e308),
			 "max", limit(ds, "max", 1.7976931348623157e308), "value",
			 isfinite(value) ? value : 0.0);
}

/* FNV-1a, 64 bits: stable across runs and machines (names live in files). */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

char *xn_ds_rrd_name(const char *name)
{
	size_t n = strlen(name);
	if (n >= 1 && n <= 19 && strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						"0123456789_") == n)
		return xn_strdup(name);
	return xn_asprintf("x%018llx", (unsigned long long)(fnv1a(name) & 0xffffffffffffffull) |
					       ((unsigned long long)n << 56));
}

const char *xn_ds_format(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, "%s", v > 0 ? "Infinity" : "-Infinity");
	else if (v == 0.0)
		snprintf(buf, len, "0.0");
	else
		snprintf(buf, len, "%0.5g", v);
	return buf;
}
