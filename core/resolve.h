/* core/resolve.h: asynchronous name resolution for server-to-server
 * connections (RFC 6120 section 3.2, XEP-0368), on the server's libevent
 * loop with c-ares.  Never blocks the loop: c-ares sockets are watched by
 * libevent events and its retransmissions are driven by a libevent timer.
 *
 * roost_resolve_server() turns an XMPP server domain into the ordered list
 * of connection targets the initiating entity tries, in order:
 *
 *   1. a static route for the domain (opts->routes), if one matches: DNS
 *      is not asked about the domain (private federations, tests);
 *   2. a domain that is an IP literal ("192.0.2.1", "[2001:db8::1]"):
 *      that address, port 5269 (no SRV lookup for an address);
 *   3. SRV lookups of _xmpps-server._tcp.<domain> (direct TLS, XEP-0368)
 *      and _xmpp-server._tcp.<domain> (STARTTLS), in parallel, merged into
 *      one set and ordered as RFC 2782 says: by priority (lowest first),
 *      then weighted-random by weight within a priority, xmpps and xmpp
 *      records mixed (XEP-0368 rule 1, no preference of our own);
 *   4. only when neither lookup gave any record (no data, NXDOMAIN or a
 *      failed query): the domain itself on port 5269 (RFC 6120 3.2.2).
 *
 * A SRV answer made of a single record whose target is "." means the
 * service is decidedly not available (RFC 2782; RFC 6120 3.2.1): for
 * _xmpp-server the lookup fails with -ROOST_EDENIED and there is no
 * fallback.  For _xmpps-server it only means no direct TLS (XEP-0368):
 * the _xmpp-server records are used, and when there are none the lookup
 * also fails with -ROOST_EDENIED, since XEP-0368 forbids the A/AAAA
 * fallback once a domain has shown it publishes SRV records.
 *
 * Each target's host is then resolved to addresses (AAAA and A records,
 * or /etc/hosts, which c-ares reads; IP literals need no lookup).  Targets
 * whose host has no address are left out of the result.
 *
 * Not here: connecting, TLS, certificate checks, dialback.  Note for the
 * caller: the identity to verify in the peer's certificate and to send
 * as SNI is the domain asked for, never a target's host (RFC 6120 13.7.2,
 * XEP-0368 rule 6). */
#ifndef ROOST_CORE_RESOLVE_H
#define ROOST_CORE_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <roost/common.h>

struct event_base;

/* The default port of a server's xmpp-server service (RFC 6120 3.2.2). */
#define ROOST_RESOLVE_S2S_PORT 5269
/* Bounds on what a domain's DNS can make us hold: SRV records used per
 * service (the rest are ignored) and addresses kept per target. */
#define ROOST_RESOLVE_MAX_SRV   32
#define ROOST_RESOLVE_MAX_ADDRS 16
/* Defaults for roost_resolver_conf_t and roost_resolve_opts_t. */
#define ROOST_RESOLVE_TIMEOUT_MS       10000
#define ROOST_RESOLVE_QUERY_TIMEOUT_MS 2000
#define ROOST_RESOLVE_QUERY_TRIES      2
#define ROOST_RESOLVE_MAX_QUERIES      64

typedef struct roost_resolver roost_resolver_t; /* c-ares on one loop */
typedef struct roost_resolve roost_resolve_t;   /* one lookup in flight */

/* Where a target came from. */
typedef enum {
    ROOST_TARGET_SRV = 0,      /* a _xmpp(s)-server SRV record */
    ROOST_TARGET_FALLBACK = 1, /* no SRV records: the domain, port 5269 */
    ROOST_TARGET_ROUTE = 2,    /* a static route (opts->routes) */
    ROOST_TARGET_LITERAL = 3   /* the domain is an IP address */
} roost_target_src_t;

/* One address to connect() to: sa holds the port already. */
typedef struct {
    socklen_t len;              /* sizeof(struct sockaddr_in or _in6) */
    struct sockaddr_storage sa; /* AF_INET6 or AF_INET */
} roost_target_addr_t;

/* One connection target.  Try the targets in array order and, within a
 * target, its addresses in order (IPv6 first, then IPv4, each family in
 * the order DNS returned it). */
typedef struct {
    char *host; /* SRV target, the domain, or the route's host */
    uint16_t port;
    /* 1: TLS at connect, ALPN "xmpp-server", SNI the domain (an
     * _xmpps-server record, or a route marked so); 0: TCP, then STARTTLS */
    int direct_tls;
    roost_target_src_t src;
    uint16_t priority; /* from the SRV record (0 otherwise) */
    uint16_t weight;   /* from the SRV record (0 otherwise) */
    size_t naddrs;     /* >= 1 */
    roost_target_addr_t *addrs;
} roost_target_t;

/* A static route: connections to domain go to host:port, no DNS lookup of
 * the domain (host itself may be a name, resolved like an SRV target, or
 * an IP literal; "[v6]" brackets are accepted). */
typedef struct {
    const char *domain; /* compared case-insensitively */
    const char *host;
    uint16_t port;
    int direct_tls;
} roost_resolve_route_t;

/* Per lookup options.  Borrowed for the duration of the call only (the
 * matching route is copied). */
typedef struct {
    const roost_resolve_route_t *routes; /* may be NULL */
    size_t nroutes;
    uint32_t timeout_ms; /* whole lookup; 0: ROOST_RESOLVE_TIMEOUT_MS */
} roost_resolve_opts_t;

/* Resolver settings.  Borrowed for the duration of roost_resolver_new. */
typedef struct {
    /* NULL: the system's servers (/etc/resolv.conf).  Otherwise a list
     * for ares_set_servers_ports_csv, e.g. "127.0.0.1:5353,[::1]:53". */
    const char *servers;
    uint32_t query_timeout_ms; /* per try; 0: ..._QUERY_TIMEOUT_MS */
    int query_tries;           /* per server; 0: ..._QUERY_TRIES */
    /* Queries (one SRV lookup, or the addresses of one host) handed to
     * c-ares at once; more wait in FIFO order, so that a burst of lookups
     * does not overflow the DNS server.  0: ..._MAX_QUERIES. */
    int max_queries;
} roost_resolver_conf_t;

/* Called once per lookup that was not cancelled, always from the event
 * loop (never from within roost_resolve_server).  On success err is 0 and
 * targets holds n >= 1 targets; otherwise targets is NULL, n is 0 and err
 * is one of:
 *   -ROOST_EDENIED    the domain's DNS says the service is decidedly not
 *                     available (a "." SRV target; see the file comment):
 *                     do not retry soon, do not fall back;
 *   -ROOST_ENOTFOUND  no such domain, or no address for any target;
 *   -ROOST_EAGAIN     the lookup timed out (opts->timeout_ms) or a DNS
 *                     server failed (SERVFAIL, refused): a transient
 *                     failure, worth retrying later;
 *   -ROOST_EIO        the resolver could not work (sockets, bad reply).
 * targets is borrowed for the duration of the call: copy what you keep
 * (roost_resolve_targets_copy).  The lookup handle is freed when done
 * returns; done may start or cancel other lookups, and may free the
 * resolver. */
typedef void (*roost_resolve_fn)(void *arg, const roost_target_t *targets,
                                 int n, int err);

/* Creates a resolver whose sockets and timers run on base (borrowed; must
 * outlive the resolver).  conf may be NULL for the defaults.  Reads
 * /etc/resolv.conf (blocking, once: call at startup).  Returns 0 and sets
 * *out, or -ROOST_EINVAL (bad servers list) or -ROOST_EIO (c-ares init
 * failed). */
int roost_resolver_new(struct event_base *base,
                       const roost_resolver_conf_t *conf,
                       roost_resolver_t **out);

/* Cancels every lookup still in flight (their done callbacks are not
 * called) and frees r.  r may be NULL.  Must not be called while c-ares
 * is running, i.e. anywhere but from the loop or outside it; calling it
 * from a done callback is fine. */
void roost_resolver_free(roost_resolver_t *r);

/* Starts resolving domain (borrowed; an XMPP domainpart, already
 * prepared) to connection targets; done(arg, ...) is called later from
 * the loop.  opts may be NULL.  If out is not NULL, *out is set to the
 * lookup's handle, valid until done has returned or the lookup is
 * cancelled.  Returns 0, or -ROOST_EINVAL (empty or over-long domain,
 * NULL done; done will not be called). */
int roost_resolve_server(roost_resolver_t *r, const char *domain,
                         const roost_resolve_opts_t *opts,
                         roost_resolve_fn done, void *arg,
                         roost_resolve_t **out);

/* Cancels lookup q: its done callback will not be called, not even if
 * the result is already waiting for the next loop turn.  q must not be
 * used afterwards.  Must not be called once done has been called (q is
 * gone by then). */
void roost_resolve_cancel(roost_resolve_t *q);

/* Lookups started and not yet completed or cancelled. */
int roost_resolver_pending(const roost_resolver_t *r);

/* Returns a deep copy of targets[0..n-1] (freed with
 * roost_resolve_targets_free), or NULL when n is 0. */
roost_target_t *roost_resolve_targets_copy(const roost_target_t *targets,
                                           int n);
/* Frees an array from roost_resolve_targets_copy.  t may be NULL. */
void roost_resolve_targets_free(roost_target_t *t, int n);

/* Parses a route's "host:port", "[v6]:port" or "host" (port 5269) into
 * *host (a new string: roost_free) and *port.  Returns 0 or
 * -ROOST_EINVAL. */
int roost_resolve_parse_hostport(const char *spec, char **host, uint16_t *port);

#endif /* ROOST_CORE_RESOLVE_H */
