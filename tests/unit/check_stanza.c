/* tests/unit/check_stanza.c: unit tests for core/stanza.c (and the
 * document entry point roost_stanza_parse() from core/xml.c).
 *
 * Builder and accessors, attributes, text merging, removal, copies,
 * refcounts across threads, the serialiser's escaping and namespace rules,
 * byte-exact round trips of unknown extensions, error and reply
 * construction.  The parser's restrictions and limits are tested in
 * check_xml.c. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roost/stanza.h>

static roost_stanza_t *
parse(const char *s)
{
    return roost_stanza_parse(s, strlen(s));
}

/* Serialises el (parent_ns as given), compares with want, frees. */
static void
assert_xml(const roost_stanza_t *el, const char *parent_ns, const char *want)
{
    size_t len = 0;
    char *s = roost_stanza_serialize(el, parent_ns, &len);

    ck_assert_str_eq(s, want);
    ck_assert_uint_eq(len, strlen(want));
    roost_free(s);
}

START_TEST(test_builder)
{
    roost_stanza_t *m = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *body, *x, *c;

    ck_assert_str_eq(roost_stanza_name(m), "message");
    ck_assert_str_eq(roost_stanza_ns(m), ROOST_NS_CLIENT);
    ck_assert_ptr_null(roost_stanza_parent(m));
    ck_assert_ptr_null(roost_stanza_first_child(m));
    body = roost_stanza_add_child(m, NULL, "body");
    ck_assert_str_eq(roost_stanza_ns(body), ROOST_NS_CLIENT);
    ck_assert_ptr_eq(roost_stanza_parent(body), m);
    roost_stanza_add_text(body, "hi", 2);
    x = roost_stanza_add_child(m, "urn:x", "x");
    c = roost_stanza_add_child(x, NULL, "y");
    ck_assert_str_eq(roost_stanza_ns(c), "urn:x");
    c = roost_stanza_add_child(x, "", "z"); /* explicitly no namespace */
    ck_assert_str_eq(roost_stanza_ns(c), "");

    ck_assert_ptr_eq(roost_stanza_first_child(m), body);
    ck_assert_ptr_eq(roost_stanza_next_sibling(body), x);
    ck_assert_ptr_null(roost_stanza_next_sibling(x));
    ck_assert_ptr_eq(roost_stanza_child(m, NULL, "x"), x);
    ck_assert_ptr_eq(roost_stanza_child(m, "urn:x", NULL), x);
    ck_assert_ptr_eq(roost_stanza_child(m, NULL, NULL), body);
    ck_assert_ptr_null(roost_stanza_child(m, "urn:other", "x"));
    ck_assert_ptr_null(roost_stanza_child(m, NULL, "nope"));
    ck_assert_str_eq(roost_stanza_child_text(m, ROOST_NS_CLIENT, "body"), "hi");
    ck_assert_ptr_null(roost_stanza_child_text(m, NULL, "subject"));
    ck_assert_str_eq(roost_stanza_text(m), "");
    assert_xml(m, ROOST_NS_CLIENT,
               "<message><body>hi</body><x xmlns=\"urn:x\"><y/>"
               "<z xmlns=\"\"/></x></message>");
    roost_stanza_unref(m);
}
END_TEST

START_TEST(test_kind)
{
    static const struct {
        const char *ns, *name;
        roost_stanza_kind_t kind;
    } t[] = {
        {ROOST_NS_CLIENT, "message", ROOST_STANZA_MESSAGE},
        {ROOST_NS_CLIENT, "presence", ROOST_STANZA_PRESENCE},
        {ROOST_NS_CLIENT, "iq", ROOST_STANZA_IQ},
        {ROOST_NS_SERVER, "iq", ROOST_STANZA_IQ},
        {ROOST_NS_CLIENT, "body", ROOST_STANZA_OTHER},
        {"urn:x", "message", ROOST_STANZA_OTHER},
        {NULL, "message", ROOST_STANZA_OTHER},
        {ROOST_NS_STREAM, "features", ROOST_STANZA_OTHER},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        roost_stanza_t *el = roost_stanza_new(t[i].ns, t[i].name);

        ck_assert_int_eq(roost_stanza_kind(el), t[i].kind);
        roost_stanza_unref(el);
    }
}
END_TEST

START_TEST(test_attrs)
{
    roost_stanza_t *el = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    const char *v = NULL;
    char buf[32];

    ck_assert_uint_eq(roost_stanza_attr_count(el), 0);
    ck_assert_ptr_null(roost_stanza_attr(el, "to"));
    ck_assert_ptr_null(roost_stanza_attr_at(el, 0, &v));
    roost_stanza_set_attr(el, "to", "a@b");
    roost_stanza_set_attr(el, "id", "1");
    roost_stanza_set_attr(el, "type", "get");
    ck_assert_uint_eq(roost_stanza_attr_count(el), 3);
    ck_assert_str_eq(roost_stanza_attr(el, "id"), "1");
    /* Replacing keeps the position; the value is copied. */
    strcpy(buf, "c@d");
    roost_stanza_set_attr(el, "to", buf);
    strcpy(buf, "zzz");
    ck_assert_str_eq(roost_stanza_attr(el, "to"), "c@d");
    ck_assert_str_eq(roost_stanza_attr_at(el, 0, &v), "to");
    ck_assert_str_eq(v, "c@d");
    /* Removal keeps the order of the rest; removing twice is harmless. */
    roost_stanza_set_attr(el, "to", NULL);
    roost_stanza_set_attr(el, "to", NULL);
    roost_stanza_set_attr(el, "absent", NULL);
    ck_assert_uint_eq(roost_stanza_attr_count(el), 2);
    ck_assert_str_eq(roost_stanza_attr_at(el, 0, NULL), "id");
    ck_assert_str_eq(roost_stanza_attr_at(el, 1, &v), "type");
    ck_assert_str_eq(v, "get");
    ck_assert_ptr_null(roost_stanza_attr_at(el, 2, &v));
    ck_assert_ptr_null(roost_stanza_attr(el, "to"));
    /* Growth past the initial capacity. */
    for (int i = 0; i < 50; i++) {
        snprintf(buf, sizeof(buf), "a%d", i);
        roost_stanza_set_attr(el, buf, buf);
    }
    ck_assert_uint_eq(roost_stanza_attr_count(el), 52);
    ck_assert_str_eq(roost_stanza_attr(el, "a49"), "a49");
    ck_assert_str_eq(roost_stanza_attr(el, "type"), "get");
    roost_stanza_unref(el);
}
END_TEST

START_TEST(test_text)
{
    roost_stanza_t *el = roost_stanza_new(NULL, "body");
    char big[5000];

    roost_stanza_add_text(el, "", 0);
    ck_assert_str_eq(roost_stanza_text(el), "");
    ck_assert_ptr_null(roost_stanza_first_child(el));
    /* Pieces merge into one run; not NUL-terminated input is fine. */
    roost_stanza_add_text(el, "abcXXX", 3);
    roost_stanza_add_text(el, "def", 3);
    memset(big, 'g', sizeof(big));
    roost_stanza_add_text(el, big, sizeof(big));
    ck_assert_uint_eq(strlen(roost_stanza_text(el)), 6 + sizeof(big));
    ck_assert(strncmp(roost_stanza_text(el), "abcdefggg", 9) == 0);
    roost_stanza_unref(el);

    /* Mixed content: direct text concatenated, child text excluded. */
    el = roost_stanza_new(NULL, "p");
    roost_stanza_add_text(el, "one ", 4);
    roost_stanza_add_text(roost_stanza_add_child(el, NULL, "b"), "bold", 4);
    roost_stanza_add_text(el, "two", 3);
    ck_assert_str_eq(roost_stanza_text(el), "one two");
    assert_xml(el, NULL, "<p>one <b>bold</b>two</p>");
    roost_stanza_unref(el);
}
END_TEST

START_TEST(test_remove)
{
    roost_stanza_t *el = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *a = roost_stanza_add_child(el, NULL, "a");
    roost_stanza_t *b = roost_stanza_add_child(el, NULL, "b");
    roost_stanza_t *c = roost_stanza_add_child(el, NULL, "c");

    roost_stanza_remove(b);
    ck_assert_ptr_null(roost_stanza_parent(b));
    ck_assert_ptr_eq(roost_stanza_next_sibling(a), c);
    roost_stanza_remove(c); /* the last one: appending still works */
    roost_stanza_add_child(el, NULL, "d");
    roost_stanza_remove(a);
    assert_xml(el, ROOST_NS_CLIENT, "<message><d/></message>");
    roost_stanza_remove(el); /* a root: nothing happens */
    roost_stanza_remove(b);  /* already unlinked */
    /* Removed elements stay usable while the root lives. */
    ck_assert_str_eq(roost_stanza_name(b), "b");
    roost_stanza_unref(el);
}
END_TEST

START_TEST(test_copy)
{
    roost_stanza_t *m =
        parse("<message xmlns='jabber:client' to='a@b'><body>x&amp;y</body>"
              "<x xmlns='urn:x' xmlns:p='urn:p' p:q='1'>t<y/>u</x></message>");
    roost_stanza_t *c, *x;
    char *s1, *s2;

    ck_assert_ptr_nonnull(m);
    c = roost_stanza_copy(m);
    s1 = roost_stanza_serialize(m, NULL, NULL);
    s2 = roost_stanza_serialize(c, NULL, NULL);
    ck_assert_str_eq(s1, s2);
    roost_free(s2);
    /* Independent: changing the copy leaves the original alone. */
    roost_stanza_set_attr(c, "to", "z@z");
    roost_stanza_add_text(roost_stanza_child(c, NULL, "body"), "!", 1);
    ck_assert_str_eq(roost_stanza_attr(m, "to"), "a@b");
    ck_assert_str_eq(roost_stanza_child_text(m, NULL, "body"), "x&y");
    roost_stanza_unref(m);
    /* ... and outlives it. */
    ck_assert_str_eq(roost_stanza_child_text(c, NULL, "body"), "x&y!");

    /* Copy of a child becomes a root of its own. */
    x = roost_stanza_copy(roost_stanza_child(c, "urn:x", "x"));
    ck_assert_ptr_null(roost_stanza_parent(x));
    assert_xml(x, NULL,
               "<x xmlns=\"urn:x\" xmlns:ns1=\"urn:p\" ns1:q=\"1\">t<y/>u</x>");
    roost_stanza_unref(c);
    roost_stanza_unref(x);
    roost_free(s1);
}
END_TEST

START_TEST(test_add_copy)
{
    roost_stanza_t *a = roost_stanza_new("urn:a", "a");
    roost_stanza_t *b = roost_stanza_new("urn:b", "b");
    roost_stanza_t *k;

    roost_stanza_add_text(roost_stanza_add_child(b, NULL, "c"), "t", 1);
    k = roost_stanza_add_copy(a, b);
    ck_assert_ptr_eq(roost_stanza_parent(k), a);
    roost_stanza_unref(b); /* the copy lives in a's arena */
    assert_xml(a, NULL,
               "<a xmlns=\"urn:a\"><b xmlns=\"urn:b\"><c>t</c></b></a>");
    /* Copying a tree into itself terminates and copies the old state. */
    roost_stanza_add_copy(k, a);
    assert_xml(a, NULL,
               "<a xmlns=\"urn:a\"><b xmlns=\"urn:b\"><c>t</c>"
               "<a xmlns=\"urn:a\"><b xmlns=\"urn:b\"><c>t</c></b></a>"
               "</b></a>");
    roost_stanza_unref(a);
}
END_TEST

typedef struct {
    roost_stanza_t *el;
    int n;
} ref_job_t;

static void *
ref_worker(void *arg)
{
    ref_job_t *j = arg;

    for (int i = 0; i < j->n; i++)
        roost_stanza_ref(j->el);
    for (int i = 0; i < j->n; i++)
        roost_stanza_unref(j->el);
    return NULL;
}

START_TEST(test_refcount)
{
    roost_stanza_t *m = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *child = roost_stanza_add_child(m, NULL, "body");
    ref_job_t job = {child, 20000};
    pthread_t t[4];

    /* A ref on a child holds the whole tree. */
    ck_assert_ptr_eq(roost_stanza_ref(child), child);
    roost_stanza_unref(m);
    ck_assert_str_eq(roost_stanza_name(roost_stanza_parent(child)), "message");
    /* Concurrent ref/unref pairs leave the count where it was. */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, ref_worker, &job), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_str_eq(roost_stanza_name(child), "body");
    roost_stanza_unref(child); /* the last: ASan sees a leak otherwise */
    roost_stanza_unref(NULL);
}
END_TEST

/* Escaping: text and attribute values. */
static const struct {
    const char *in;
    const char *text, *attr;
} esc[] = {
    {"plain", "plain", "plain"},
    {"a&b", "a&amp;b", "a&amp;b"},
    {"<tag>", "&lt;tag&gt;", "&lt;tag&gt;"},
    {"]]>", "]]&gt;", "]]&gt;"},
    {"\"q\" 'a'", "\"q\" 'a'", "&quot;q&quot; &apos;a&apos;"},
    {"t\tn\nr\r", "t\tn\nr&#13;", "t&#9;n&#10;r&#13;"},
    {"&amp;", "&amp;amp;", "&amp;amp;"},
#define UTF8 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
    {UTF8, UTF8, UTF8},
#undef UTF8
    /* Characters XML 1.0 cannot carry are dropped. */
    {"a\x01"
     "b\x1f"
     "c\x0b",
     "abc", "abc"},
    /* So are the noncharacters U+FFFE and U+FFFF (XML 1.0 §2.2 Char), but
     * not their neighbours U+FFFD and U+10000 (found by
     * fuzz_stanza_roundtrip: a built text with U+FFFF serialised into XML
     * no parser accepts). */
    {"a\xef\xbf\xbf"
     "b\xef\xbf\xbe"
     "c\xef\xbf\xbd\xf0\x90\x80\x80",
     "abc\xef\xbf\xbd\xf0\x90\x80\x80", "abc\xef\xbf\xbd\xf0\x90\x80\x80"},
    {"\xef\xbf\xbf\x01", "", ""},
    {"", "", ""},
};

START_TEST(test_escape)
{
    roost_stanza_t *el = roost_stanza_new(NULL, "e"), *back;
    char want[256];
    char *s;

    roost_stanza_set_attr(el, "v", esc[_i].in);
    roost_stanza_add_text(el, esc[_i].in, strlen(esc[_i].in));
    if (*esc[_i].in != '\0')
        snprintf(want, sizeof(want), "<e v=\"%s\">%s</e>", esc[_i].attr,
                 esc[_i].text);
    else
        snprintf(want, sizeof(want), "<e v=\"\"/>");
    assert_xml(el, NULL, want);
    /* What comes back from a parser is what went in (minus the dropped
     * characters). */
    s = roost_stanza_serialize(el, NULL, NULL);
    back = roost_stanza_parse(s, strlen(s));
    ck_assert_ptr_nonnull(back);
    if (strchr(esc[_i].in, '\x01') == NULL &&
        strstr(esc[_i].in, "\xef\xbf\xbf") == NULL) {
        ck_assert_str_eq(roost_stanza_attr(back, "v"), esc[_i].in);
        ck_assert_str_eq(roost_stanza_text(back), esc[_i].in);
    }
    roost_free(s);
    roost_stanza_unref(back);
    roost_stanza_unref(el);
}
END_TEST

START_TEST(test_namespaces)
{
    roost_stanza_t *m = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *x, *s;

    /* xmlns only where the default changes; client == server. */
    assert_xml(m, ROOST_NS_CLIENT, "<message/>");
    assert_xml(m, ROOST_NS_SERVER, "<message/>");
    assert_xml(m, NULL, "<message xmlns=\"jabber:client\"/>");
    assert_xml(m, "urn:other", "<message xmlns=\"jabber:client\"/>");
    x = roost_stanza_add_child(m, "urn:x", "x");
    roost_stanza_add_child(x, ROOST_NS_CLIENT, "back");
    s = roost_stanza_add_child(m, ROOST_NS_SERVER, "same");
    (void)s;
    assert_xml(m, ROOST_NS_CLIENT,
               "<message><x xmlns=\"urn:x\"><back xmlns=\"jabber:client\"/>"
               "</x><same/></message>");
    roost_stanza_unref(m);

    /* NULL ns inherits: nothing is written. */
    m = roost_stanza_new(NULL, "message");
    assert_xml(m, ROOST_NS_CLIENT, "<message/>");
    assert_xml(m, NULL, "<message/>");
    roost_stanza_unref(m);

    /* xml:lang, namespaced attributes, stray xmlns attributes. */
    m = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_set_attr(m, "xml:lang", "en");
    roost_stanza_set_attr(m, "urn:a|one", "1");
    roost_stanza_set_attr(m, "urn:b|two", "2");
    roost_stanza_set_attr(m, "urn:a|three", "3");
    roost_stanza_set_attr(m, ROOST_NS_XML "|space", "preserve");
    roost_stanza_set_attr(m, "xmlns", "evil");
    roost_stanza_set_attr(m, "xmlns:p", "evil");
    roost_stanza_set_attr(m, "weird|pipe|local", "4");
    assert_xml(m, ROOST_NS_CLIENT,
               "<message xml:lang=\"en\" xmlns:ns2=\"urn:a\" ns2:one=\"1\""
               " xmlns:ns3=\"urn:b\" ns3:two=\"2\" ns2:three=\"3\""
               " xml:space=\"preserve\""
               " xmlns:ns8=\"weird|pipe\" ns8:local=\"4\"/>");
    roost_stanza_unref(m);
}
END_TEST

/* Canonical documents: parse + serialise gives back the same bytes. */
static const char *const roundtrip[] = {
    "<message xmlns=\"jabber:client\" to=\"a@b\" type=\"chat\">"
    "<body>hi</body></message>",
    "<message xmlns=\"jabber:client\"><x xmlns=\"urn:x:unknown\" a=\"1\">"
    "<deep><deeper xmlns=\"urn:y\">t</deeper></deep></x></message>",
    "<iq xmlns=\"jabber:client\" type=\"set\" id=\"1\">"
    "<query xmlns=\"urn:x\" xmlns:ns1=\"urn:ext\" ns1:flag=\"yes\""
    " xmlns:ns2=\"urn:ext2\" ns2:other=\"no\" ns1:again=\"1\"/></iq>",
    "<presence xmlns=\"jabber:client\" xml:lang=\"fr\"><status>\xc3\xa9t\xc3"
    "\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87</status>"
    "</presence>",
    "<a xmlns=\"urn:a\"><b xmlns=\"\"><c/></b></a>",
    "<a><b>x &amp; y &lt; z &gt; w \"'</b><c v=\"&lt;&amp;&gt;&quot;&apos;"
    "&#9;&#10;&#13;\"/></a>",
    "<a>mixed <b>content</b> with <i>inline</i> markup</a>",
    /* Regression (fuzz_xml, tests/fuzz/corpus/xml/regress-xml-ns-element):
     * elements in the XML namespace keep their reserved prefix. */
    "<xml:langx/>",
    "<a xmlns=\"urn:a\"><xml:b><c/></xml:b></a>",
};

START_TEST(test_roundtrip)
{
    const char *in = roundtrip[_i];
    roost_stanza_t *el = roost_stanza_parse(in, strlen(in));
    size_t len;
    char *out;

    ck_assert_ptr_nonnull(el);
    out = roost_stanza_serialize(el, NULL, &len);
    ck_assert_str_eq(out, in);
    ck_assert_uint_eq(len, strlen(in));
    roost_free(out);
    roost_stanza_unref(el);
}
END_TEST

/* roost_stanza_parse() keeps one parser per thread and resets it between
 * documents.  Each probe must come out of the reused parser exactly as out
 * of a new one (a new thread's first parse), whatever the document before
 * it did: fail midway, nest deeply, declare namespace prefixes, grow the
 * parser past what is kept. */
static char *
nested(int depth, const char *decl)
{
    size_t n = (size_t)depth * (16 + strlen(decl)) + 16, len = 0;
    char *s = malloc(n);

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < depth; i++)
        len += (size_t)snprintf(s + len, n - len, "<p:e%s>", decl);
    for (int i = 0; i < depth; i++)
        len += (size_t)snprintf(s + len, n - len, "</p:e>");
    return s;
}

static char *
big_text(void)
{
    size_t n = 200 * 1024;
    char *s = malloc(n + 64);

    ck_assert_ptr_nonnull(s);
    strcpy(s, "<a xmlns='urn:big'><b xmlns:z='urn:z' z:c='1'>");
    memset(s + strlen(s), 'x', n);
    strcpy(s + strlen("<a xmlns='urn:big'><b xmlns:z='urn:z' z:c='1'>") + n,
           "</b></a>");
    return s;
}

/* Serialisation of doc parsed, or "NULL". */
static char *
parse_ser(const char *doc)
{
    roost_stanza_t *el = roost_stanza_parse(doc, strlen(doc));
    char *out, *ret;

    if (el == NULL)
        return strdup("NULL");
    out = roost_stanza_serialize(el, NULL, NULL);
    ret = strdup(out);
    roost_free(out);
    roost_stanza_unref(el);
    return ret;
}

static void *
fresh_thread(void *arg)
{
    return parse_ser(arg);
}

/* The same on a new thread, so on a new parser. */
static char *
parse_ser_fresh(const char *doc)
{
    pthread_t t;
    void *ret;

    ck_assert_int_eq(pthread_create(&t, NULL, fresh_thread, (void *)doc), 0);
    ck_assert_int_eq(pthread_join(t, &ret), 0);
    return ret;
}

#define ROSTER_ITEM                                                            \
    "<item xmlns='jabber:iq:roster' jid='juliet@example.com' name='Juliet' "   \
    "subscription='both'><group>Friends</group></item>"

static const char *const reuse_before[] = {
    /* failed midway */
    "<a xmlns='urn:a' xmlns:p='urn:p'><p:b xml:lang='de'><c>text",
    "<a xmlns:p='urn:p'><p:b></c></a>",
    "<a xmlns:q='urn:q'><q:b>\xff</q:b></a>",
    "<!DOCTYPE a><a/>",
    "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
    "<a xmlns:p='urn:p'><p:b><!-- c --></p:b></a>",
    "<a xmlns:p='urn:p'><p:b><?pi x?></p:b></a>",
    "<a>&foo;</a>",
    "<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
    "<a><b>a\x01</b></a>",
    /* deep: at the limit, and past it (policy-violation midway) */
    "deep:255",
    "deep:256",
    "deep:300",
    /* other prefixes and default namespaces */
    "<q xmlns='urn:q' xmlns:p='urn:p' xmlns:r='urn:r'><p:x r:y='1'>"
    "<z xmlns='urn:z'/></p:x></q>",
    "<p:q xmlns:p='jabber:iq:roster' xmlns:group='urn:g'/>",
    /* bigger than what is kept */
    "big",
    ROSTER_ITEM,
};

static const char *const reuse_probe[] = {
    ROSTER_ITEM,
    "<presence xmlns='jabber:client' from='a@b/c' type='unavailable'>"
    "<status>away</status><delay xmlns='urn:xmpp:delay' stamp='x'/>"
    "</presence>",
    "<a xml:lang='en'><b>x &amp; y</b></a>",
    /* prefixes declared by an earlier document stay undeclared */
    "<a><p:b/></a>",
    "<a q:x='1'/>",
    "<item xmlns='jabber:iq:roster'><group:g/></item>",
    "<a><b/></a>",
    /* the restrictions */
    "<!DOCTYPE a><a/>",
    "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
    "<a><!-- c --></a>",
    "<?pi x?><a/>",
    "<a>&foo;</a>",
    "<a>\xff</a>",
    "<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
    "<a>",
    /* the depth limit */
    "deep:255",
    "deep:256",
    "deep:257",
};

static char *
reuse_doc(const char *spec)
{
    if (strncmp(spec, "deep:", 5) == 0)
        return nested(atoi(spec + 5), " xmlns:p='urn:p'");
    if (strcmp(spec, "big") == 0)
        return big_text();
    return strdup(spec);
}

START_TEST(test_parse_reuse)
{
    char *before = reuse_doc(reuse_before[_i]);

    for (size_t j = 0; j < sizeof(reuse_probe) / sizeof(reuse_probe[0]); j++) {
        char *probe = reuse_doc(reuse_probe[j]);
        char *fresh = parse_ser_fresh(probe), *reused;

        free(parse_ser(before));
        reused = parse_ser(probe);
        ck_assert_msg(strcmp(fresh, reused) == 0,
                      "after %.60s: %.60s gave %.80s, fresh %.80s",
                      reuse_before[_i], reuse_probe[j], reused, fresh);
        free(reused);
        free(fresh);
        free(probe);
    }
    free(before);
}
END_TEST

/* What the probes give on a new parser, so that the comparison above is
 * not between two wrong answers. */
START_TEST(test_parse_reuse_fresh)
{
    static const char *const want[] = {
        "<item xmlns=\"jabber:iq:roster\" jid=\"juliet@example.com\" "
        "name=\"Juliet\" subscription=\"both\"><group>Friends</group></item>",
        NULL,
        "<a xml:lang=\"en\"><b>x &amp; y</b></a>",
        "NULL",
        "NULL",
        "NULL",
        "<a><b/></a>",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        NULL,
        NULL,
        "NULL",
    };

    ck_assert_uint_eq(sizeof(want) / sizeof(want[0]),
                      sizeof(reuse_probe) / sizeof(reuse_probe[0]));
    for (size_t j = 0; j < sizeof(want) / sizeof(want[0]); j++) {
        char *probe = reuse_doc(reuse_probe[j]);
        char *got = parse_ser_fresh(probe);

        if (want[j] != NULL)
            ck_assert_msg(strcmp(got, want[j]) == 0, "%.60s: %s",
                          reuse_probe[j], got);
        else
            ck_assert_str_ne(got, "NULL");
        free(got);
        free(probe);
    }
}
END_TEST

/* Many threads parse at once and exit: each has its own parser, freed at
 * its exit (LeakSanitizer checks that in the ASan build). */
static void *
reuse_worker(void *arg)
{
    for (int i = 0; i < 200; i++) {
        char *s = parse_ser(i % 3 == 2 ? "<a><!-- c --></a>" : ROSTER_ITEM);

        if (i % 3 == 2 ? strcmp(s, "NULL") != 0 : strcmp(s, "NULL") == 0) {
            free(s);
            return (void *)1;
        }
        free(s);
    }
    return NULL;
}

START_TEST(test_parse_threads)
{
    pthread_t t[8];
    void *ret;

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, reuse_worker, NULL), 0);
    ck_assert_ptr_null(reuse_worker(NULL));
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_join(t[i], &ret), 0);
        ck_assert_ptr_null(ret);
    }
}
END_TEST

START_TEST(test_parse)
{
    static const char *const bad[] = {
        "",
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "text",
        "<a>&foo;</a>",
        "<!DOCTYPE a><a/>",
        "<a><!-- c --></a>",
        "<?pi x?><a/>",
        "<a xmlns:p='urn:p'><q:b/></a>",
        "<a>\xff</a>",
        "<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
    };
    roost_stanza_t *el;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(roost_stanza_parse(bad[i], strlen(bad[i])) == NULL,
                      "accepted: %s", bad[i]);
    ck_assert_ptr_null(roost_stanza_parse(NULL, 5));
    /* Only len bytes count. */
    ck_assert_ptr_null(roost_stanza_parse("<a/>", 3));
    el = roost_stanza_parse("<a/>garbage", 4);
    ck_assert_ptr_nonnull(el);
    roost_stanza_unref(el);
    el = parse("<?xml version='1.0' encoding='utf-8'?>\n"
               "<a xmlns:p='urn:p' p:x='1' xml:lang='en'> "
               "<![CDATA[<raw>]]> </a>\n");
    ck_assert_ptr_nonnull(el);
    ck_assert_ptr_null(roost_stanza_ns(el));
    ck_assert_str_eq(roost_stanza_attr(el, "urn:p|x"), "1");
    ck_assert_str_eq(roost_stanza_attr(el, "xml:lang"), "en");
    ck_assert_str_eq(roost_stanza_text(el), " <raw> ");
    roost_stanza_unref(el);
}
END_TEST

START_TEST(test_deep)
{
    /* Far deeper than the parser allows: copy and serialise must not
     * recurse. */
    roost_stanza_t *root = roost_stanza_new("urn:d", "d"), *el = root, *c;
    size_t len;
    char *s;

    for (int i = 0; i < 100000; i++)
        el = roost_stanza_add_child(el, NULL, "d");
    c = roost_stanza_copy(root);
    s = roost_stanza_serialize(c, "urn:d", &len);
    ck_assert_uint_eq(len, 100000 * 7 + 4);
    ck_assert(strncmp(s, "<d><d>", 6) == 0);
    ck_assert(strcmp(s + len - 8, "</d></d>") == 0);
    roost_free(s);
    roost_stanza_unref(c);
    roost_stanza_unref(root);
}
END_TEST

START_TEST(test_reply)
{
    roost_stanza_t *iq = parse(
        "<iq xmlns='jabber:client' type='get' id='p1' from='a@b/r' to='b'>"
        "<ping xmlns='urn:xmpp:ping'/></iq>");
    roost_stanza_t *r;

    ck_assert_ptr_nonnull(iq);
    r = roost_stanza_reply(iq);
    ck_assert_int_eq(roost_stanza_kind(r), ROOST_STANZA_IQ);
    assert_xml(r, ROOST_NS_CLIENT,
               "<iq type=\"result\" id=\"p1\" to=\"a@b/r\" from=\"b\"/>");
    roost_stanza_unref(r);
    roost_stanza_unref(iq);

    /* Missing attributes stay missing. */
    iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    r = roost_stanza_reply(iq);
    assert_xml(r, ROOST_NS_CLIENT, "<iq type=\"result\"/>");
    roost_stanza_unref(r);
    roost_stanza_unref(iq);
}
END_TEST

static const struct {
    roost_stanza_err_t cond;
    const char *name, *type;
} errs[] = {
    {ROOST_SE_BAD_REQUEST, "bad-request", "modify"},
    {ROOST_SE_CONFLICT, "conflict", "cancel"},
    {ROOST_SE_FEATURE_NOT_IMPLEMENTED, "feature-not-implemented", "cancel"},
    {ROOST_SE_FORBIDDEN, "forbidden", "auth"},
    {ROOST_SE_GONE, "gone", "cancel"},
    {ROOST_SE_INTERNAL_SERVER_ERROR, "internal-server-error", "cancel"},
    {ROOST_SE_ITEM_NOT_FOUND, "item-not-found", "cancel"},
    {ROOST_SE_JID_MALFORMED, "jid-malformed", "modify"},
    {ROOST_SE_NOT_ACCEPTABLE, "not-acceptable", "modify"},
    {ROOST_SE_NOT_ALLOWED, "not-allowed", "cancel"},
    {ROOST_SE_NOT_AUTHORIZED, "not-authorized", "auth"},
    {ROOST_SE_POLICY_VIOLATION, "policy-violation", "modify"},
    {ROOST_SE_RECIPIENT_UNAVAILABLE, "recipient-unavailable", "wait"},
    {ROOST_SE_REDIRECT, "redirect", "modify"},
    {ROOST_SE_REGISTRATION_REQUIRED, "registration-required", "auth"},
    {ROOST_SE_REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", "cancel"},
    {ROOST_SE_REMOTE_SERVER_TIMEOUT, "remote-server-timeout", "wait"},
    {ROOST_SE_RESOURCE_CONSTRAINT, "resource-constraint", "wait"},
    {ROOST_SE_SERVICE_UNAVAILABLE, "service-unavailable", "cancel"},
    {ROOST_SE_SUBSCRIPTION_REQUIRED, "subscription-required", "auth"},
    {ROOST_SE_UNDEFINED_CONDITION, "undefined-condition", "cancel"},
    {ROOST_SE_UNEXPECTED_REQUEST, "unexpected-request", "wait"},
    /* Not conditions: undefined-condition rather than garbage. */
    {ROOST_SE_NONE, "undefined-condition", "cancel"},
    {ROOST_SE__COUNT, "undefined-condition", "cancel"},
};

START_TEST(test_err_names)
{
    roost_stanza_t *m, *e, *err, *c;

    ck_assert_str_eq(roost_stanza_err_name(errs[_i].cond), errs[_i].name);
    ck_assert_str_eq(roost_stanza_err_type(errs[_i].cond), errs[_i].type);
    /* And the element roost_stanza_error builds from it. */
    m = roost_stanza_new(ROOST_NS_CLIENT, "message");
    e = roost_stanza_error(m, errs[_i].cond, NULL);
    err = roost_stanza_child(e, ROOST_NS_CLIENT, "error");
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(roost_stanza_attr(err, "type"), errs[_i].type);
    c = roost_stanza_first_child(err);
    ck_assert_str_eq(roost_stanza_name(c), errs[_i].name);
    ck_assert_str_eq(roost_stanza_ns(c), ROOST_NS_STANZAS);
    ck_assert_ptr_null(roost_stanza_next_sibling(c));
    roost_stanza_unref(e);
    roost_stanza_unref(m);
}
END_TEST

START_TEST(test_error)
{
    static const char iq_in[] =
        "<iq xmlns='jabber:client' type='set' id='q' from='a@b/r' to='c@d'>"
        "<query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>";
    static const char msg_in[] =
        "<message xmlns='jabber:client' from='a@b/r' to='c@d' type='chat'>"
        "<body>hello</body><error type='cancel'><gone xmlns='" ROOST_NS_STANZAS
        "'/></error></message>";
    roost_stanza_t *st = roost_stanza_parse(iq_in, strlen(iq_in)), *e;

    ck_assert_ptr_nonnull(st);
    e = roost_stanza_error(st, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    assert_xml(
        e, ROOST_NS_CLIENT,
        "<iq type=\"error\" id=\"q\" from=\"c@d\" to=\"a@b/r\">"
        "<error type=\"cancel\"><service-unavailable xmlns=\"" ROOST_NS_STANZAS
        "\"/></error></iq>");
    roost_stanza_unref(e);
    /* The original is untouched. */
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "set");
    ck_assert_ptr_nonnull(roost_stanza_child(st, NULL, "query"));
    roost_stanza_unref(st);

    /* message: payload kept, old <error/> replaced, text added; a missing
     * 'to' swaps into a missing 'from'. */
    st = roost_stanza_parse(msg_in, strlen(msg_in));
    ck_assert_ptr_nonnull(st);
    roost_stanza_set_attr(st, "to", NULL);
    e = roost_stanza_error(st, ROOST_SE_NOT_ACCEPTABLE, "no <way> & no");
    assert_xml(
        e, ROOST_NS_CLIENT,
        "<message type=\"error\" to=\"a@b/r\"><body>hello</body>"
        "<error type=\"modify\"><not-acceptable xmlns=\"" ROOST_NS_STANZAS
        "\"/><text xmlns=\"" ROOST_NS_STANZAS
        "\">no &lt;way&gt; &amp; no</text></error></message>");
    ck_assert_str_eq(
        roost_stanza_child_text(roost_stanza_child(e, NULL, "error"),
                                ROOST_NS_STANZAS, "text"),
        "no <way> & no");
    roost_stanza_unref(e);
    roost_stanza_unref(st);
}
END_TEST

static Suite *
stanza_suite(void)
{
    Suite *s = suite_create("stanza");
    TCase *tc;

#define ADD(name, fn)                                                          \
    do {                                                                       \
        tc = tcase_create(name);                                               \
        tcase_add_test(tc, fn);                                                \
        suite_add_tcase(s, tc);                                                \
    } while (0)
#define ADD_LOOP(name, fn, table)                                              \
    do {                                                                       \
        tc = tcase_create(name);                                               \
        tcase_add_loop_test(tc, fn, 0,                                         \
                            (int)(sizeof(table) / sizeof(table[0])));          \
        suite_add_tcase(s, tc);                                                \
    } while (0)
    ADD("builder", test_builder);
    ADD("kind", test_kind);
    ADD("attrs", test_attrs);
    ADD("text", test_text);
    ADD("remove", test_remove);
    ADD("copy", test_copy);
    ADD("add_copy", test_add_copy);
    ADD("refcount", test_refcount);
    ADD_LOOP("escape", test_escape, esc);
    ADD("namespaces", test_namespaces);
    ADD_LOOP("roundtrip", test_roundtrip, roundtrip);
    ADD("parse", test_parse);
    ADD_LOOP("parse_reuse", test_parse_reuse, reuse_before);
    ADD("parse_reuse_fresh", test_parse_reuse_fresh);
    ADD("parse_threads", test_parse_threads);
    ADD("deep", test_deep);
    ADD("reply", test_reply);
    ADD_LOOP("err_names", test_err_names, errs);
    ADD("error", test_error);
#undef ADD
#undef ADD_LOOP
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(stanza_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
