/* test_status.c - status names and messages, version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "edgc.h"

static void test_every_status_has_text(void** state)
{
    (void)state;
#define CHECK_TEXT(name, value, text)                                                              \
    assert_string_equal(edgc_status_str(EDGC_##name), text);                                       \
    assert_string_equal(edgc_status_name(EDGC_##name), "EDGC_" #name);                             \
    assert_int_equal(EDGC_##name, value);
    EDGC_STATUS_MAP(CHECK_TEXT)
#undef CHECK_TEXT
    assert_string_equal(edgc_status_str((edgc_status)999), "unknown status");
    assert_string_equal(edgc_status_name((edgc_status)999), "EDGC_UNKNOWN");
}

static void test_version(void** state)
{
    (void)state;
    assert_int_equal(edgc_version_number(), EDGC_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", EDGC_VERSION_MAJOR, EDGC_VERSION_MINOR,
             EDGC_VERSION_PATCH);
    assert_string_equal(edgc_version_string(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status_has_text),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
