/* tls.c: OpenSSL over memory BIOs, and the self-signed certificate made
 * on first start (tls.h). */
#include "api/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fs.h"

struct xn_tls_ctx {
	SSL_CTX *ctx;
};

struct xn_tls {
	SSL *ssl;
	BIO *in, *out; /* in: from the peer; out: to the peer */
};

static int ssl_fail(xn_error **err, const char *what)
{
	char buf[256] = "";
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	return xn_fail_internal(err, "TLS: %s: %s", what, buf);
}

static int make_self_signed(const char *path, const char *cn, xn_error **err)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int rc = -1;
	if (!key || !x) {
		ssl_fail(err, "cannot make a key");
		goto out;
	}
	unsigned char serial[16];
	FILE *r = fopen("/dev/urandom", "rb");
	if (!r || fread(serial, 1, sizeof(serial), r) != sizeof(serial)) {
		if (r)
			fclose(r);
		xn_fail_internal(err, "TLS: cannot read random bytes");
		goto out;
	}
	fclose(r);
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (!X509_sign(x, key, EVP_sha256())) {
		ssl_fail(err, "cannot sign the certificate");
		goto out;
	}
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	PEM_write_bio_X509(b, x);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	rc = xn_write_file_atomic(path, data, (size_t)n, 0600, err);
	BIO_free(b);
out:
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

xn_tls_ctx *xn_tls_ctx_new(const char *pem_path, const char *cn, xn_error **err)
{
	if (!xn_path_exists(pem_path) && make_self_signed(pem_path, cn, err) < 0)
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_fail(err, "cannot make a context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, pem_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, pem_path, SSL_FILETYPE_PEM) != 1) {
		ssl_fail(err, pem_path);
		SSL_CTX_free(ctx);
		return NULL;
	}
	xn_tls_ctx *c = xn_calloc(1, sizeof(*c));
	c->ctx = ctx;
	return c;
}

void xn_tls_ctx_free(xn_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ctx);
	free(ctx);
}

xn_tls *xn_tls_new(xn_tls_ctx *ctx)
{
	xn_tls *t = xn_calloc(1, sizeof(*t));
	t->ssl = SSL_new(ctx->ctx);
	t->in = BIO_new(BIO_s_mem());
	t->out = BIO_new(BIO_s_mem());
	SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both BIOs */
	SSL_set_accept_state(t->ssl);
	return t;
}

void xn_tls_free(xn_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

int xn_tls_feed(xn_tls *t, const char *data, size_t len, xn_buf *plain)
{
	if (len && BIO_write(t->in, data, (int)len) != (int)len)
		return -1;
	char buf[16384];
	for (;;) {
		int n = SSL_read(t->ssl, buf, sizeof(buf));
		if (n > 0) {
			xn_buf_append(plain, buf, (size_t)n);
			continue;
		}
		int e = SSL_get_error(t->ssl, n);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		return -1; /* closed or broken */
	}
}

int xn_tls_write(xn_tls *t, const char *data, size_t len)
{
	while (len > 0) {
		int n = SSL_write(t->ssl, data, (int)(len > 1 << 30 ? 1 << 30 : len));
		if (n <= 0) {
			ERR_clear_error();
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

void xn_tls_pending(xn_tls *t, xn_buf *out)
{
	char buf[16384];
	int n;
	while ((n = BIO_read(t->out, buf, sizeof(buf))) > 0)
		xn_buf_append(out, buf, (size_t)n);
}
