/* core/log.c: the log sink.  One line per record, written with one
 * fprintf so concurrent worker threads do not interleave within a line.
 * The stream is stderr; roostd opens log_file onto descriptor 2 and a
 * SIGHUP reopen is one dup2() there (core/main.c main_log_open), so no
 * FILE is ever closed under a worker that is writing.  The level is
 * atomic: the loop changes it on SIGHUP while workers read it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "log.h"

_Atomic int roost_log_level = ROOST_LOG_INFO;
static FILE *log_fp;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

int
roost_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

int
roost_log_open(const char *path)
{
    FILE *fp;

    if (path == NULL) {
        if (log_fp != NULL && log_fp != stderr)
            fclose(log_fp);
        log_fp = stderr;
        return 0;
    }
    fp = fopen(path, "a");
    if (fp == NULL)
        return -ROOST_EIO;
    setvbuf(fp, NULL, _IOLBF, 0);
    if (log_fp != NULL && log_fp != stderr)
        fclose(log_fp);
    log_fp = fp;
    return 0;
}

void
roost_log_vwrite(int level, const char *tag, const char *fmt, va_list ap)
{
    char msg[2048], ts[32];
    struct timeval tv;
    struct tm tm;

    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fprintf(log_fp ? log_fp : stderr, "%s.%03dZ %-5s [%s] %s\n", ts,
            (int)(tv.tv_usec / 1000), log_names[level], tag ? tag : "core",
            msg);
}

void
roost_log_write(int level, const char *tag, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    roost_log_vwrite(level, tag, fmt, ap);
    va_end(ap);
}

void
roost_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    roost_log_vwrite(ROOST_LOG_ERROR, "fatal", fmt, ap);
    va_end(ap);
    exit(1);
}
