/* tests/unit/check_router.c: walks the default-action table of
 * doc/stanza_routing.md (section 4) row by row against
 * roost_router_default(), the router's decision when no module handled a
 * stanza.  The rows here carry the doc's row numbers. */
#include <check.h>
#include <stdlib.h>

#include "server.h"

#define M ROOST_STANZA_MESSAGE
#define P ROOST_STANZA_PRESENCE
#define I ROOST_STANZA_IQ

static const struct {
    int row;
    roost_stanza_kind_t kind;
    const char *type;
    roost_rt_target_t target;
    int session;
    roost_rt_action_t action;
} rows[] = {
    {1, M, "normal", ROOST_RT_HOST, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {1, M, "chat", ROOST_RT_HOST, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {1, M, "groupchat", ROOST_RT_HOST, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {1, M, NULL, ROOST_RT_HOST, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {2, M, "headline", ROOST_RT_HOST, 0, ROOST_RA_DROP},
    {3, M, "error", ROOST_RT_HOST, 0, ROOST_RA_DROP},
    {3, M, "error", ROOST_RT_BARE, 0, ROOST_RA_DROP},
    {3, M, "error", ROOST_RT_FULL, 0, ROOST_RA_DROP},
    {4, M, "normal", ROOST_RT_BARE, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {4, M, "chat", ROOST_RT_BARE, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {5, M, "headline", ROOST_RT_BARE, 0, ROOST_RA_DROP},
    {6, M, "chat", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {6, M, "error", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {6, M, "headline", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {6, M, NULL, ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {7, M, "chat", ROOST_RT_FULL, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {8, M, "headline", ROOST_RT_FULL, 0, ROOST_RA_DROP},
    {9, P, NULL, ROOST_RT_BARE, 0, ROOST_RA_DELIVER_AVAILABLE},
    {9, P, "unavailable", ROOST_RT_BARE, 0, ROOST_RA_DELIVER_AVAILABLE},
    {10, P, "subscribe", ROOST_RT_BARE, 0, ROOST_RA_DROP},
    {10, P, "probe", ROOST_RT_BARE, 0, ROOST_RA_DROP},
    {11, P, NULL, ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {11, P, "unavailable", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {12, P, NULL, ROOST_RT_FULL, 0, ROOST_RA_DROP},
    {13, P, "probe", ROOST_RT_FULL, 1, ROOST_RA_DROP},
    {14, P, NULL, ROOST_RT_HOST, 0, ROOST_RA_DROP},
    {14, P, "subscribe", ROOST_RT_HOST, 0, ROOST_RA_DROP},
    {15, P, "error", ROOST_RT_FULL, 0, ROOST_RA_DROP},
    {15, P, "error", ROOST_RT_BARE, 0, ROOST_RA_DROP},
    {25, P, "error", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {16, I, "get", ROOST_RT_HOST, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {16, I, "set", ROOST_RT_BARE, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {17, I, "get", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {18, I, "set", ROOST_RT_FULL, 0, ROOST_RA_BOUNCE_UNAVAILABLE},
    {19, I, "result", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {19, I, "error", ROOST_RT_FULL, 1, ROOST_RA_DELIVER_FULL},
    {20, I, "result", ROOST_RT_FULL, 0, ROOST_RA_DROP},
    {21, I, "result", ROOST_RT_HOST, 0, ROOST_RA_DROP},
    {21, I, "error", ROOST_RT_BARE, 0, ROOST_RA_DROP},
    {22, I, NULL, ROOST_RT_HOST, 0, ROOST_RA_BOUNCE_BAD_REQUEST},
    {22, I, "fetch", ROOST_RT_FULL, 1, ROOST_RA_BOUNCE_BAD_REQUEST},
    {23, M, "chat", ROOST_RT_REMOTE, 0, ROOST_RA_BOUNCE_REMOTE},
    {23, M, NULL, ROOST_RT_REMOTE, 0, ROOST_RA_BOUNCE_REMOTE},
    {23, I, "get", ROOST_RT_REMOTE, 0, ROOST_RA_BOUNCE_REMOTE},
    {24, P, NULL, ROOST_RT_REMOTE, 0, ROOST_RA_DROP},
    {24, I, "result", ROOST_RT_REMOTE, 0, ROOST_RA_DROP},
    {24, M, "error", ROOST_RT_REMOTE, 0, ROOST_RA_DROP},
    {24, I, "error", ROOST_RT_REMOTE, 0, ROOST_RA_DROP},
};

START_TEST(default_table)
{
    roost_rt_action_t got = roost_router_default(
        rows[_i].kind, rows[_i].type, rows[_i].target, rows[_i].session);

    ck_assert_msg(got == rows[_i].action,
                  "doc row %d (entry %d, type %s): got action %d, want %d",
                  rows[_i].row, _i, rows[_i].type ? rows[_i].type : "none",
                  (int)got, (int)rows[_i].action);
}
END_TEST

static Suite *
router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("default_table");

    tcase_add_loop_test(tc, default_table, 0,
                        (int)(sizeof(rows) / sizeof(rows[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(router_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
