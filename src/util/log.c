/* log.c: timestamped log lines on stderr (log.h). */
#include "util/log.h"

#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static enum xn_log_level min_level = XN_LOG_INFO;

void xn_log_set_level(enum xn_log_level level)
{
	min_level = level;
}

void xn_log(enum xn_log_level level, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info ", "warn ", "error"};
	if (level < min_level)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *msg = xn_vasprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03dZ %s %s\n", ts, (int)(tv.tv_usec / 1000), names[level], msg);
}
