/* uuid.c: version-4 UUIDs from getrandom(2) (uuid.h). */
#include <stddef.h>
#include "util/uuid.h"
#include "util/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void xn_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r <= 0)
			abort(); /* the kernel's entropy source is not optional */
		p += r;
		n -= (size_t)r;
	}
}

void xn_uuid_generate(char out[XN_UUID_LEN + 1])
{
	unsigned char b[16];
	xn_random_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, XN_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
		 b[11], b[12], b[13], b[14], b[15]);
}

char *xn_uuid_new(void)
{
	char u[XN_UUID_LEN + 1];
	xn_uuid_generate(u);
	return xn_strdup(u);
}

char *xn_ref_new(void)
{
	char u[XN_UUID_LEN + 1];
	xn_uuid_generate(u);
	return xn_asprintf(XN_REF_PREFIX "%s", u);
}

bool xn_uuid_valid(const char *s)
{
	if (!s || strlen(s) != XN_UUID_LEN)
		return false;
	for (int i = 0; i < XN_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

bool xn_ref_is_null(const char *ref)
{
	return !ref || !*ref || strcmp(ref, XN_NULL_REF) == 0;
}
