/* libFuzzer harnesses for the request decoders and the where-expression
 * parser: everything a client controls before the dispatcher checks it.
 * Built three times with -DFUZZ_TARGET=1|2|3 by `make fuzz`. */
#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "api/where.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#if FUZZ_TARGET == 1
	xn_rpc_request rq;
	if (xn_jsonrpc_decode((const char *)data, size, &rq) == 0) {
		json_decref(rq.params);
		json_decref(rq.id);
		free(rq.method);
	}
#elif FUZZ_TARGET == 2
	char *method = NULL;
	json_t *params = xn_xmlrpc_decode((const char *)data, size, &method);
	if (params) {
		/* the encoder must take whatever the decoder produced */
		xn_buf b = {0};
		xn_xmlrpc_value(&b, params, NULL);
		xn_buf_reset(&b);
	}
	json_decref(params);
	free(method);
#else
	char *text = xn_strndup((const char *)data, size);
	xn_error *err = NULL;
	xn_where *w = xn_where_parse(text, &err);
	if (w) {
		json_t *rec = json_pack("{s:s,s:b,s:i}", "name_label", "a", "x", 1, "n", 3);
		xn_where_match(w, rec);
		json_decref(rec);
	}
	xn_where_free(w);
	xn_error_free(err);
	free(text);
#endif
	return 0;
}
