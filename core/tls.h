/* core/tls.h: OpenSSL server contexts per virtual host (SNI), self-signed
 * certificate generation for the quickstart, and channel-binding data for
 * SCRAM-PLUS.  Not for socket I/O: core/conn.c wires SSL objects into
 * libevent bufferevents. */
#ifndef ROOST_CORE_TLS_H
#define ROOST_CORE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* Once per process. */
int roost_tls_init(void);

/* A server SSL_CTX for one vhost: TLS 1.2 minimum, no compression, no
 * renegotiation, session tickets on, the certificate chain and key from PEM
 * files.  NULL with *err set (roost_free) on failure. */
SSL_CTX *roost_tls_ctx_new(const char *cert_path, const char *key_path,
                           char **err);

/* A new context like roost_tls_ctx_new() from cert_path and key_path,
 * carrying over the SNI and ALPN settings of old (which stays untouched:
 * connections hold their own reference to it).  For SIGHUP: the caller
 * swaps it in for new connections and drops its reference to old.  NULL
 * with *err set (roost_free) on failure, and old remains valid. */
SSL_CTX *roost_tls_ctx_reload(SSL_CTX *old, const char *cert_path,
                              const char *key_path, char **err);

/* The SHA-256 fingerprint of ctx's certificate as "AB:CD:..." (95
 * characters and a NUL; size >= 96), or "none".  For logs. */
void roost_tls_ctx_fingerprint(SSL_CTX *ctx, char *out, size_t size);

/* Creates an ECDSA P-256 self-signed certificate for domain (CN and
 * subjectAltName dNSName) valid 10 years, unless both files already exist.
 * The key file is written mode 0600.  0 or -ROOST_E* with *err set. */
int roost_tls_selfsigned(const char *domain, const char *cert_path,
                         const char *key_path, char **err);

/* Installs an SNI callback on ctx: lookup(servername, arg) returns the
 * SSL_CTX to switch to, or NULL to keep ctx.  servername is lowercased. */
void roost_tls_set_sni(SSL_CTX *ctx,
                       SSL_CTX *(*lookup)(const char *servername, void *arg),
                       void *arg);

/* Installs an ALPN callback selecting proto ("xmpp-client" or
 * "xmpp-server") if the client offers it; a client offering ALPN without
 * it is refused (RFC 7301 no_application_protocol), one offering none is
 * accepted. */
void roost_tls_set_alpn(SSL_CTX *ctx, const char *proto);
/* The ALPN protocol this one connection accepts instead of its context's
 * (proto: a string literal, e.g. "xmpp-server" for s2s STARTTLS on a host
 * context set up for c2s); kept across the SNI switch of context. */
void roost_tls_set_conn_alpn(SSL *ssl, const char *proto);

/* Channel-binding data of an established connection for type
 * "tls-exporter" (RFC 9266; TLS 1.3 only) or "tls-unique" (RFC 5929; TLS
 * 1.2 with the extended master secret, and as a COMPAT fallback on TLS 1.3
 * for clients that still use it there: the first Finished as OpenSSL-based
 * clients compute it), or "tls-server-end-point" (RFC 5929: the hash of
 * our certificate; not for signatures without a hash).  Writes at most
 * *len bytes to out and sets *len.  0, or -ROOST_ENOTFOUND when the type
 * does not apply to this connection.  With out NULL (len unused) it only
 * says whether the type applies, without deriving or hashing anything:
 * what offering a mechanism needs. */
int roost_tls_channel_binding(SSL *ssl, const char *type, unsigned char *out,
                              size_t *len);
/* The channel-binding types available on ssl, NULL-terminated static
 * array, preferred first ({"tls-exporter", "tls-unique", NULL} on TLS
 * 1.3). */
const char *const *roost_tls_cb_types(SSL *ssl);

#endif /* ROOST_CORE_TLS_H */
