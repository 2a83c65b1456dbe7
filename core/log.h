/* core/log.h: leveled logging for the core (HOUSE 19).  Modules use
 * roost_log() from roost/module.h; sessions use roost_session_log(). */
#ifndef ROOST_CORE_LOG_H
#define ROOST_CORE_LOG_H

#include <stdarg.h>
#include <roost/common.h>

/* Written by the loop (start, SIGHUP), read by every thread. */
extern _Atomic int roost_log_level;

/* Writes one line "date level [tag] message" to the log stream. */
void roost_log_write(int level, const char *tag, const char *fmt, ...)
    ROOST_PRINTF(3, 4);
void roost_log_vwrite(int level, const char *tag, const char *fmt, va_list ap)
    ROOST_PRINTF(3, 0);
/* Directs output to path (appending), or stderr when path is NULL.
 * Returns 0 or -ROOST_EIO. */
int roost_log_open(const char *path);
/* "error", "warn", "info", "debug" -> level, or -1. */
int roost_log_parse_level(const char *name);

#define ROOST_LOG(level, tag, ...)                                             \
    do {                                                                       \
        if ((level) <= roost_log_level)                                        \
            roost_log_write((level), (tag), __VA_ARGS__);                      \
    } while (0)

/* Fatal error before the event loop starts: logs and exits(1). */
void roost_fatal(const char *fmt, ...) ROOST_PRINTF(1, 2)
    __attribute__((noreturn));

#endif /* ROOST_CORE_LOG_H */
