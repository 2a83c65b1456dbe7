/* tests/modules/check_mod_version.c: mod_version (XEP-0092) on the fake
 * host.
 *
 * Covers: name and version in the reply, <os/> only with show_os true
 * (and its default false), the reply's addressing, and the feature.
 * Not for: the core's roost_version() string itself. */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_version;

#define VERSION_GET                                                            \
    "<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"
#define FROM "alice@localhost/phone"

/* The show_os field of a version conf struct, found through the
 * module's own option table (the struct is private to the module). */
static int *
show_os_field(const void *conf)
{
    const roost_opt_t *o;

    for (o = roost_module_version.opts; o != NULL && o->name != NULL; o++)
        if (strcmp(o->name, "show_os") == 0 && o->type == ROOST_OPT_BOOL)
            return (int *)((char *)conf + o->offset);
    ck_abort_msg("no BOOL option show_os");
    return NULL;
}

static void
conf_show_os(void *conf)
{
    *show_os_field(conf) = 1;
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* Loads with conf_init (may be NULL), asks, returns the <query/>. */
static roost_stanza_t *
ask(void (*conf_init)(void *conf))
{
    roost_stanza_t *r;

    ck_assert_ptr_nonnull(
        harness_load(&roost_module_version, "localhost", conf_init));
    ck_assert_ptr_nonnull(harness_session_add(FROM, 1, 0));
    ck_assert_int_eq(harness_inject(FROM, "localhost", VERSION_GET),
                     ROOST_HANDLED);
    ck_assert_uint_eq(harness_delivered_count(FROM), 1);
    r = harness_delivered_stanza(FROM, 0);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "v1");
    ck_assert_pstr_eq(roost_stanza_attr(r, "to"), FROM);
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), "localhost");
    r = roost_stanza_child(r, "jabber:iq:version", "query");
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(test_default_no_os)
{
    roost_stanza_t *q = ask(NULL);

    ck_assert_int_eq(*show_os_field(roost_mod_conf(harness_mod("version"))), 0);
    ck_assert_pstr_eq(roost_stanza_child_text(q, "jabber:iq:version", "name"),
                      "Roost");
    ck_assert_pstr_eq(
        roost_stanza_child_text(q, "jabber:iq:version", "version"),
        roost_version());
    ck_assert_ptr_null(roost_stanza_child(q, NULL, "os"));
}
END_TEST

START_TEST(test_show_os)
{
    roost_stanza_t *q = ask(conf_show_os);
    struct utsname u;

    ck_assert_int_eq(uname(&u), 0);
    ck_assert_pstr_eq(roost_stanza_child_text(q, "jabber:iq:version", "os"),
                      u.sysname);
    ck_assert_pstr_eq(roost_stanza_child_text(q, "jabber:iq:version", "name"),
                      "Roost");
}
END_TEST

START_TEST(test_feature)
{
    roost_stanza_t *q = ask(NULL);

    (void)q;
    ck_assert_int_eq(harness_feature_count(), 1);
}
END_TEST

START_TEST(test_set_unanswered)
{
    roost_stanza_t *r;

    ck_assert_ptr_nonnull(
        harness_load(&roost_module_version, "localhost", NULL));
    ck_assert_int_eq(harness_inject("example.net", "localhost",
                                    "<iq type='set' id='s'><query "
                                    "xmlns='jabber:iq:version'/></iq>"),
                     ROOST_PASS);
    r = harness_sent_stanza(0);
    ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
}
END_TEST

static Suite *
version_suite(void)
{
    Suite *s = suite_create("mod_version");
    TCase *tc;

    tc = tcase_create("reply");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_default_no_os);
    tcase_add_test(tc, test_set_unanswered);
    suite_add_tcase(s, tc);

    tc = tcase_create("show_os");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_show_os);
    suite_add_tcase(s, tc);

    tc = tcase_create("advertise");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_feature);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(version_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
