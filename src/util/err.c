/* err.c: construction and release of xn_error values (err.h). */
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *default_message(const char *code, char *const *params)
{
	xn_buf b = {0};
	xn_buf_puts(&b, code);
	for (size_t i = 0; params && params[i]; i++) {
		xn_buf_puts(&b, i ? ", " : ": ");
		xn_buf_puts(&b, params[i]);
	}
	return xn_buf_steal(&b);
}

int xn_failv(xn_error **err, const char *code, char *const *params)
{
	if (!err || *err)
		return -1;
	xn_error *e = xn_calloc(1, sizeof(*e));
	e->code = xn_strdup(code);
	e->params = xn_strv_new();
	for (size_t i = 0; params && params[i]; i++)
		xn_strv_push(&e->params, params[i]);
	e->message = default_message(code, params);
	*err = e;
	return -1;
}

int xn_fail_va(xn_error **err, const char *code, va_list ap)
{
	XN_AUTOSTRV char **params = xn_strv_new();
	for (const char *p; (p = va_arg(ap, const char *));)
		xn_strv_push(&params, p);
	return xn_failv(err, code, params);
}

int xn_fail(xn_error **err, const char *code, ...)
{
	va_list ap;
	va_start(ap, code);
	xn_fail_va(err, code, ap);
	va_end(ap);
	return -1;
}

int xn_fail_internal(xn_error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *msg = xn_vasprintf(fmt, ap);
	va_end(ap);
	return xn_fail(err, "INTERNAL_ERROR", msg, NULL);
}

int xn_fail_errno(xn_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *msg = xn_vasprintf(fmt, ap);
	va_end(ap);
	XN_AUTOFREE char *full = xn_asprintf("%s: %s", msg, strerror(errnum));
	return xn_fail(err, "INTERNAL_ERROR", full, NULL);
}

void xn_error_prefix(xn_error *e, const char *fmt, ...)
{
	if (!e)
		return;
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *pre = xn_vasprintf(fmt, ap);
	va_end(ap);
	char *m = xn_asprintf("%s: %s", pre, e->message);
	free(e->message);
	e->message = m;
}

void xn_error_free(xn_error *e)
{
	if (!e)
		return;
	free(e->code);
	xn_strv_free(e->params);
	free(e->message);
	free(e);
}

void xn_errorp_free(xn_error **e)
{
	xn_error_free(*e);
	*e = NULL;
}

char *xn_error_str(const xn_error *e)
{
	return xn_strdup(e ? e->message : "(no error)");
}

int xn_error_propagate(xn_error **dst, xn_error **src)
{
	if (dst && !*dst) {
		*dst = *src;
	} else {
		xn_error_free(*src);
	}
	*src = NULL;
	return -1;
}
