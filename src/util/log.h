/* log.h: the daemon's log, one line per event on stderr:
 * "2026-11-21T14:50:00.123Z info  vm: started 'web1'". */
#ifndef XN_LOG_H
#define XN_LOG_H

#include "util/util.h"

enum xn_log_level { XN_LOG_DEBUG, XN_LOG_INFO, XN_LOG_WARN, XN_LOG_ERROR };

void xn_log_set_level(enum xn_log_level level);
void xn_log(enum xn_log_level level, const char *fmt, ...) XN_PRINTF(2, 3);

#define xn_debug(...) xn_log(XN_LOG_DEBUG, __VA_ARGS__)
#define xn_info(...) xn_log(XN_LOG_INFO, __VA_ARGS__)
#define xn_warn(...) xn_log(XN_LOG_WARN, __VA_ARGS__)
#define xn_error_log(...) xn_log(XN_LOG_ERROR, __VA_ARGS__)

#endif
