/* core/config.h: the server configuration, read with libconfig.
 *
 * The core's own options are one table in core/config.c (HOUSE 17); module
 * options are typed roost_opt_t tables filled per vhost from the group
 * named after the module inside the host's group, falling back to a
 * top-level group of that name, then to the option's default.  Unknown keys
 * and out-of-range values are errors reported as "file:line: message".
 * Relative paths are resolved against the config file's directory (data_dir)
 * or data_dir (files inside it). */
#ifndef ROOST_CORE_CONFIG_H
#define ROOST_CORE_CONFIG_H

#include <stdint.h>
#include <roost/module.h>

typedef enum {
    ROOST_LISTEN_C2S = 0,
    ROOST_LISTEN_S2S = 1,
    ROOST_LISTEN_COMPONENT = 2 /* XEP-0114 */
} roost_listen_type_t;

typedef enum {
    ROOST_TLS_STARTTLS = 0, /* plain connect, STARTTLS offered */
    ROOST_TLS_DIRECT = 1,   /* TLS from the first byte (XEP-0368) */
    ROOST_TLS_NONE = 2      /* no TLS at all (tests, localhost only) */
} roost_tls_mode_t;

typedef struct {
    char *address; /* "127.0.0.1", "::", ... */
    int port;
    roost_listen_type_t type;
    roost_tls_mode_t tls;
} roost_listen_conf_t;

/* An external component (XEP-0114): its domain and shared secret. */
typedef struct {
    char *domain; /* prepared */
    char *secret;
} roost_component_conf_t;

/* A static s2s route (s2s.routes): domain -> host:port, before DNS. */
typedef struct {
    char *domain; /* prepared */
    char *host;   /* name or numeric address */
    int port;
} roost_s2s_route_t;

/* Policy for one remote domain (s2s.peers), both directions: streams to
 * it and streams authenticating as it.  Unset keys take the s2s group's
 * values. */
typedef struct {
    char *domain;           /* prepared */
    int require_encryption; /* STARTTLS before dialback */
    int bidi;               /* XEP-0288 with this peer */
} roost_s2s_peer_t;

typedef struct {
    char *domain;           /* prepared domain */
    char *cert, *key;       /* absolute paths; default data_dir/certs/D.* */
    int cert_generated;     /* no cert configured: self-signed is made */
    char **modules;         /* NULL-terminated module names */
    char **admins;          /* NULL-terminated bare JIDs */
    int anonymous;          /* SASL ANONYMOUS on this host */
    int require_encryption; /* TLS before authentication (default 1) */
    int line;               /* where the host is declared */
    const void *setting;    /* libconfig setting of the host group */
} roost_host_conf_t;

typedef struct {
    char *path; /* the config file, absolute */
    int log_level;
    char *log_file;           /* NULL = stderr */
    char *data_dir;           /* absolute; created if missing */
    char *pidfile;            /* NULL = none */
    char *user, *group;       /* privilege drop after binding; NULL = stay */
    char *modules_dir;        /* where mod_*.so live */
    char *storage_driver;     /* "sqlite" or "memory" */
    char *storage_path;       /* absolute sqlite file */
    int64_t max_stanza_size;  /* bytes, default 262144 */
    int64_t max_depth;        /* default 64 */
    int64_t max_attrs;        /* default 64 */
    int64_t c2s_timeout;      /* ms without input before a ping; default 300s */
    int64_t auth_timeout;     /* ms an unauthenticated stream may live: 30s */
    int64_t output_hwm;       /* bytes queued to a client before reads
                              * pause; 4x that closes it; default 512 KiB */
    int64_t auth_fail_delay;  /* ms before answering a failed auth: 1000 */
    int64_t scram_iterations; /* default 4096 */
    int64_t worker_threads;   /* CPU workers, default 2 */
    int64_t max_resources;    /* sessions per account, default 10 */
    int64_t sm_resume_timeout;    /* ms a lost XEP-0198 session waits: 300s */
    int64_t sm_max_queue;         /* unacknowledged stanzas per session: 1000 */
    int64_t max_conn_per_ip;      /* open c2s connections per address: 100 */
    int64_t auth_failures_per_ip; /* failed logins per address and window
                                   * before SASL is refused: 10 */
    int64_t auth_failure_window;  /* ms: 300 s */
    int64_t c2s_rate;  /* bytes/s read per connection (token bucket), 256 KiB;
                        * 0 = no limit */
    int64_t c2s_burst; /* bucket size, bytes: 1 MiB */
    int64_t fast_token_lifetime; /* ms a XEP-0484 token is valid: 14 days;
                                  * 0 = no FAST */
    /* Before SASL success (issue 6): */
    int64_t preauth_max_bytes;  /* bytes read per connection: 64 KiB;
                                 * 0 = no limit */
    int64_t preauth_max_stanza; /* stanza bytes: 16 KiB (at most
                                 * max_stanza_size) */
    int64_t preauth_max_total;  /* memory of all unauthenticated
                                 * connections: 64 MiB; 0 = no limit */
    roost_listen_conf_t *listen;
    int nlisten;
    /* s2s = { ... } */
    int s2s_require_encryption;  /* STARTTLS required both ways: true */
    char *s2s_secret;            /* dialback secret; NULL = random */
    char *s2s_dns_servers;       /* "ip:port,..." for SRV/A lookups; NULL =
                                  * /etc/resolv.conf */
    char *s2s_ca_file;           /* CA certificates for PKIX; NULL = the
                                  * system's */
    int s2s_secure_auth;         /* PKIX (SASL EXTERNAL) only, no dialback */
    int64_t s2s_connect_timeout; /* ms to connect and authenticate: 30 s */
    int64_t s2s_idle_timeout;    /* ms an unused stream stays: 300 s */
    int s2s_bidi;                /* XEP-0288 offered and asked for: true */
    roost_s2s_route_t *s2s_routes;
    int ns2s_routes;
    roost_s2s_peer_t *s2s_peers; /* s2s.peers; core/s2s.c hashes them */
    int ns2s_peers;
    roost_component_conf_t *components; /* components = ( ... ) */
    int ncomponents;
    roost_host_conf_t *hosts;
    int nhosts;
    void *lc; /* the libconfig config_t */
} roost_config_t;

/* Reads and validates path.  NULL with *err = "file:line: message"
 * (roost_free) on any error. */
roost_config_t *roost_config_load(const char *path, char **err);
/* The same for len bytes of text standing for the file path (absolute,
 * need not exist); creates no directory (for tools and fuzzing). */
roost_config_t *roost_config_load_text(const char *path, const char *text,
                                       size_t len, char **err);
void roost_config_free(roost_config_t *c);
const roost_host_conf_t *roost_config_host(const roost_config_t *c,
                                           const char *domain);

/* Fills conf (conf_size bytes, zeroed by the caller) from opts for module
 * on host: host group, then top-level group, then defaults.  0 or
 * -ROOST_ECONFIG with *err = "file:line: message".  Strings stay owned by
 * the config. */
int roost_config_module_opts(roost_config_t *c, const roost_host_conf_t *h,
                             const char *module, const roost_opt_t *opts,
                             void *conf, char **err);

/* Parses one value as an option of type t into dst (used for defaults
 * and by tests).  0 or -ROOST_EINVAL/-ROOST_ELIMIT. */
int roost_config_parse_opt(const roost_opt_t *o, const char *text, void *dst);

#endif /* ROOST_CORE_CONFIG_H */
