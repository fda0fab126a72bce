/* util.c: allocation wrappers, string vectors and buffers (util.h). */
#include "util/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
	fputs("xenia: out of memory\n", stderr);
	abort();
}

void *xn_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xn_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xn_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xn_strdup(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		oom();
	return d;
}

char *xn_strndup(const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (!d)
		oom();
	return d;
}

char *xn_vasprintf(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

char *xn_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xn_vasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void xn_freep(void *p)
{
	free(*(void **)p);
}

void xn_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

char **xn_strv_new(void)
{
	return xn_calloc(1, sizeof(char *));
}

void xn_strv_push(char ***v, const char *s)
{
	size_t n = *v ? xn_strv_len(*v) : 0;
	*v = xn_realloc(*v, (n + 2) * sizeof(char *));
	(*v)[n] = xn_strdup(s);
	(*v)[n + 1] = NULL;
}

void xn_strv_pushf(char ***v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *s = xn_vasprintf(fmt, ap);
	va_end(ap);
	xn_strv_push(v, s);
}

size_t xn_strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void xn_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void xn_strvp_free(char ***v)
{
	xn_strv_free(*v);
}

char *xn_strv_join(char *const *v, const char *sep)
{
	xn_buf b = {0};
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			xn_buf_puts(&b, sep);
		xn_buf_puts(&b, v[i]);
	}
	return xn_buf_steal(&b);
}

bool xn_str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool xn_streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

void xn_buf_append(xn_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = xn_realloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void xn_buf_puts(xn_buf *b, const char *s)
{
	xn_buf_append(b, s, strlen(s));
}

void xn_buf_printf(xn_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *s = xn_vasprintf(fmt, ap);
	va_end(ap);
	xn_buf_puts(b, s);
}

void xn_buf_consume(xn_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void xn_buf_reset(xn_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *xn_buf_steal(xn_buf *b)
{
	if (!b->data)
		return xn_strdup("");
	char *s = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

uint64_t xn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double xn_wall_time(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool xn_fault_armed(const char *name)
{
	const char *want = getenv("XENIA_FAULT");
	return want && strcmp(want, name) == 0;
}

void xn_fault_point(const char *name)
{
	if (xn_fault_armed(name)) {
		fprintf(stderr, "fault point %s: dying\n", name);
		raise(SIGKILL);
	}
}
