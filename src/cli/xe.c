/* xe.c: main() of the `xe` command-line client.
 *
 * Parses the command line (with defaults from ~/.xe and XE_EXTRA_ARGS),
 * finds the command, checks its parameters, logs in to the local daemon
 * over its Unix socket ($XENIA_SOCKET, default /run/xenia/xapi.sock) or
 * to a remote host (-s), runs the handler, logs out, and turns failures
 * into xe's messages on stderr. Exit status: 0 success, 1 failure. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/fs.h"

#define DEFAULT_SOCKET "/run/xenia/xapi.sock"

static void load_defaults(xe_args *a)
{
	const char *extra = getenv("XE_EXTRA_ARGS");
	if (extra)
		xe_args_defaults(a, extra, ',');
	const char *home = getenv("HOME");
	if (!home)
		return;
	XN_AUTOFREE char *path = xn_asprintf("%s/.xe", home);
	XN_AUTOFREE char *text = xn_path_exists(path) ? xn_read_file(path, NULL, NULL) : NULL;
	if (text)
		xe_args_defaults(a, text, '\n');
}

/* -pwf FILE: the user name on the first line, the password on the second. */
static int read_pwfile(xe_args *a, xn_error **err)
{
	XN_AUTOERR xn_error *ferr = NULL;
	XN_AUTOFREE char *text = xn_read_file(a->pwfile, NULL, &ferr);
	if (!text)
		return xe_fail(err, "Error: cannot read password file '%s'", a->pwfile);
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	char *pw = nl ? nl + 1 : "";
	pw[strcspn(pw, "\r\n")] = '\0';
	free(a->username);
	free(a->password);
	a->username = xn_strdup(text);
	a->password = xn_strdup(pw);
	return 0;
}

static int make_target(xe_args *a, xe_target *t, xn_error **err)
{
	memset(t, 0, sizeof(*t));
	if (!a->server) {
		const char *sock = getenv("XENIA_SOCKET");
		t->socket = sock && *sock ? sock : DEFAULT_SOCKET;
		return 0;
	}
	if (a->pwfile && read_pwfile(a, err) < 0)
		return -1;
	t->host = a->server;
	t->tls = !a->nossl;
	t->port = a->port ? a->port : a->nossl ? 80 : 443;
	t->username = a->username;
	t->password = a->password;
	if (!t->username)
		return xe_fail(err, "Error: -u <user> (or -pwf <file>) is needed with -s");
	return 0;
}

/* XenAPI failures as xe prints them: the code, then its parameters with
 * references shown as "uuid (name-label)" where they can be found. */
static void print_error(xe_ctx *ctx, const xn_error *e)
{
	if (strcmp(e->code, XE_CLI_ERROR) == 0) {
		fprintf(stderr, "%s\n", e->params[0] ? e->params[0] : e->message);
		return;
	}
	if (strcmp(e->code, "SESSION_AUTHENTICATION_FAILED") == 0) {
		fputs("Authentication failed\n", stderr);
		return;
	}
	fprintf(stderr, "Error code: %s\nError parameters: ", e->code);
	for (size_t i = 0; e->params[i]; i++) {
		XN_AUTOFREE char *desc = ctx->cache ? xe_cache_describe_ref(ctx->cache, e->params[i]) : NULL;
		fprintf(stderr, "%s%s", i ? ", " : "", desc ? desc : e->params[i]);
	}
	fputs("\n", stderr);
}

static int run(xe_ctx *ctx, xe_args *a, xn_error **err)
{
	const char *name = a->words[0];
	ctx->cmd = xe_cmd_find(name);
	if (!ctx->cmd)
		return xe_fail(err, "Unknown command: %s", name);
	if (xe_cmd_check_params(ctx->cmd, a, err) < 0)
		return -1;
	if (ctx->cmd->flags & XE_CMD_NO_CONN)
		return ctx->cmd->fn(ctx, err);
	xe_target t;
	if (make_target(a, &t, err) < 0)
		return -1;
	ctx->conn = xe_conn_new(&t);
	if (xe_conn_login(ctx->conn, err) < 0)
		return -1;
	ctx->cache = xe_cache_new(ctx->conn);
	ctx->lk = xe_cache_lookup(ctx->cache);
	return ctx->cmd->fn(ctx, err);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	xn_model_init();
	xe_args a;
	XN_AUTOERR xn_error *err = NULL;
	xe_ctx ctx = {.args = &a, .out = stdout};
	int rc = xe_args_parse(&a, argc - 1, argv + 1, &err);
	if (rc == 0 && !a.words[0]) {
		/* `xe --help` asks for it; a bare `xe` is a usage error. */
		bool asked = xe_arg_flag(&a, "help");
		xe_print_usage(asked ? stdout : stderr, false);
		rc = asked ? 0 : -1;
	} else if (rc == 0) {
		load_defaults(&a);
		rc = run(&ctx, &a, &err);
	}
	fflush(stdout);
	if (rc < 0 && err) {
		/* A failed command may have changed objects: describe refs afresh. */
		if (ctx.cache)
			xe_cache_reset(ctx.cache);
		print_error(&ctx, err);
	}
	xe_cache_free(ctx.cache);
	xe_conn_free(ctx.conn);
	xe_args_clear(&a);
	return rc < 0 ? 1 : 0;
}
