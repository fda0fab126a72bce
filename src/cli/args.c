/* args.c: `xe` command-line parsing (xenapi.md §4.1) and the small value
 * parsers the commands share: sizes with units, booleans, and the
 * escaping of --minimal output. Pure functions, no I/O. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int xe_fail(xn_error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *msg = xn_vasprintf(fmt, ap);
	va_end(ap);
	return xn_fail(err, XE_CLI_ERROR, msg, NULL);
}

/* Switches that take the next argument as their value (xentop's -b
 * takes none: `xe top -b -i 3 -d 5`). */
static const struct {
	const char *sw, *key;
	bool flag;
} switches[] = {
	{"-s", "server", false},   {"-h", "server", false},     {"-p", "port", false},
	{"-u", "username", false}, {"-pw", "password", false}, {"-pwf", "passwordfile", false},
	{"-b", "batch", true},     {"-i", "iterations", false}, {"-d", "delay", false},
};

static const char *const std_params[] = {
	"server", "password", "port", "username", "passwordfile", "nossl", "debug",
	"debug-on-fail", "minimal", "force", "multiple", "all", "message-priority",
	"trace", "traceparent",
};

bool xe_words_has(const char *words, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = words ? words : ""; *p;) {
		p += strspn(p, " ");
		size_t len = strcspn(p, " ");
		if (len && len == n && strncmp(p, word, n) == 0)
			return true;
		p += len;
	}
	return false;
}

bool xe_is_std_param(const char *key)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(std_params); i++)
		if (strcmp(key, std_params[i]) == 0)
			return true;
	return false;
}

static void set_str(char **dst, const char *v, bool only_if_unset)
{
	if (only_if_unset && *dst)
		return;
	free(*dst);
	*dst = xn_strdup(v);
}

/* Connection options land in their fields; returns false for others. */
static bool take_conn_option(xe_args *a, const char *k, const char *v, bool defaults)
{
	if (strcmp(k, "server") == 0)
		set_str(&a->server, v, defaults);
	else if (strcmp(k, "username") == 0)
		set_str(&a->username, v, defaults);
	else if (strcmp(k, "password") == 0)
		set_str(&a->password, v, defaults);
	else if (strcmp(k, "passwordfile") == 0)
		set_str(&a->pwfile, v, defaults);
	else if (strcmp(k, "port") == 0) {
		if (!defaults || !a->port)
			a->port = atoi(v);
	} else if (strcmp(k, "nossl") == 0) {
		bool b = false;
		xe_parse_bool(v, &b, NULL);
		if (!defaults || !a->nossl)
			a->nossl = b;
	} else
		return false;
	return true;
}

static void push_param(xe_args *a, char *key /* taken */, const char *v)
{
	a->params = xn_realloc(a->params, (a->nparams + 1) * sizeof(xe_param));
	a->params[a->nparams].key = key;
	a->params[a->nparams].value = xn_strdup(v);
	a->nparams++;
}

static void add_param(xe_args *a, const char *k, size_t klen, const char *v)
{
	XN_AUTOFREE char *key = xn_strndup(k, klen);
	if (take_conn_option(a, key, v, false))
		return;
	push_param(a, xn_steal(&key), v);
}

/* user-add's password= is the new user's password (log in with -pw there). */
static bool command_password(const xe_args *a, const char *k, size_t klen)
{
	return klen == 8 && strncmp(k, "password", 8) == 0 && a->words[0] &&
	       strcmp(a->words[0], "user-add") == 0;
}

static int parse_switch(xe_args *a, int argc, char *const *argv, int *i, xn_error **err)
{
	for (size_t s = 0; s < XN_ARRAY_LEN(switches); s++) {
		if (strcmp(argv[*i], switches[s].sw) != 0)
			continue;
		if (switches[s].flag) {
			add_param(a, switches[s].key, strlen(switches[s].key), "true");
			return 0;
		}
		if (*i + 1 >= argc)
			return xe_fail(err, "Switch %s needs a value", argv[*i]);
		(*i)++;
		add_param(a, switches[s].key, strlen(switches[s].key), argv[*i]);
		return 0;
	}
	return xe_fail(err, "Unknown switch: %s", argv[*i]);
}

int xe_args_parse(xe_args *a, int argc, char *const *argv, xn_error **err)
{
	memset(a, 0, sizeof(*a));
	a->words = xn_strv_new();
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *eq = strchr(s, '=');
		if (xn_str_has_prefix(s, "--") && s[2]) {
			if (eq)
				add_param(a, s + 2, (size_t)(eq - s - 2), eq + 1);
			else
				add_param(a, s + 2, strlen(s + 2), "true");
		} else if (s[0] == '-' && s[1] && !eq) {
			if (parse_switch(a, argc, argv, &i, err) < 0)
				return -1;
		} else if (eq && eq != s && command_password(a, s, (size_t)(eq - s))) {
			push_param(a, xn_strdup("password"), eq + 1);
		} else if (eq && eq != s) {
			add_param(a, s, (size_t)(eq - s), eq + 1);
		} else if (!eq) {
			xn_strv_push(&a->words, s);
		} else {
			return xe_fail(err, "Malformed parameter: %s", s);
		}
	}
	return 0;
}

void xe_args_defaults(xe_args *a, const char *text, char sep)
{
	XN_AUTOFREE char *copy = xn_strdup(text ? text : "");
	char seps[] = {sep, '\n', '\0'};
	for (char *save, *tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		char *eq = strchr(tok, '=');
		if (!eq || *tok == '#')
			continue;
		*eq = '\0';
		char *v = eq + 1;
		size_t vl = strlen(v);
		while (vl && isspace((unsigned char)v[vl - 1]))
			v[--vl] = '\0';
		take_conn_option(a, tok, v, true);
	}
}

void xe_args_clear(xe_args *a)
{
	xn_strv_free(a->words);
	for (size_t i = 0; i < a->nparams; i++) {
		free(a->params[i].key);
		free(a->params[i].value);
	}
	free(a->params);
	free(a->server);
	free(a->username);
	free(a->password);
	free(a->pwfile);
	memset(a, 0, sizeof(*a));
}

const char *xe_arg(const xe_args *a, const char *key)
{
	for (size_t i = a->nparams; i-- > 0;)
		if (strcmp(a->params[i].key, key) == 0)
			return a->params[i].value;
	return NULL;
}

bool xe_arg_flag(const xe_args *a, const char *key)
{
	bool b = false;
	const char *v = xe_arg(a, key);
	return v && xe_parse_bool(v, &b, NULL) == 0 && b;
}

int xe_parse_bool(const char *s, bool *out, xn_error **err)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < XN_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return xe_fail(err, "Error: '%s' is not a boolean (expected true or false)", s);
}

int xe_parse_size(const char *s, int64_t *out, xn_error **err)
{
	static const struct {
		const char *suffix;
		int shift;
	} units[] = {
		{"", 0},    {"b", 0},   {"k", 10},   {"kb", 10}, {"kib", 10},
		{"m", 20},  {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
		{"gib", 30}, {"t", 40}, {"tb", 40},  {"tib", 40},
	};
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return xe_fail(err, "Error: invalid size '%s'", s);
	char *end;
	errno = 0;
	unsigned long long n = strtoull(p, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	for (size_t i = 0; i < XN_ARRAY_LEN(units) && errno == 0; i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (n > ((unsigned long long)INT64_MAX >> units[i].shift))
			break;
		*out = (int64_t)(n << units[i].shift);
		return 0;
	}
	return xe_fail(err, "Error: invalid size '%s'", s);
}

char *xe_minimal_join(char *const *values)
{
	xn_buf b = {0};
	for (size_t i = 0; values && values[i]; i++) {
		if (i)
			xn_buf_puts(&b, ",");
		for (const char *p = values[i]; *p; p++) {
			if (*p == ',' || *p == '\\')
				xn_buf_puts(&b, "\\");
			xn_buf_append(&b, p, 1);
		}
	}
	return xn_buf_steal(&b);
}
