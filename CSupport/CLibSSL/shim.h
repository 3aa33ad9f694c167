// OpenSSL's libssl, for HTTPS trackers: TLS over memory BIOs, so the bytes travel on the io_uring
// ring like any other socket's. The wrappers below stand in for macros Swift cannot import.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline long potluck_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

static inline int potluck_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline size_t potluck_bio_pending(BIO *bio) { return BIO_ctrl_pending(bio); }
