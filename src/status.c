/*
 * status.c - status codes to text, generated from the one list in edgc.h (EDGC_STATUS_MAP).
 */
#include "edgc_internal.h"

#include <stdio.h>

const char* edgc_status_str(edgc_status s)
{
    switch (s) {
#define EDGC__STATUS_TEXT(name, value, text)                                                       \
    case EDGC_##name:                                                                              \
        return text;
        EDGC_STATUS_MAP(EDGC__STATUS_TEXT)
#undef EDGC__STATUS_TEXT
    }
    return "unknown status";
}

const char* edgc_status_name(edgc_status s)
{
    switch (s) {
#define EDGC__STATUS_NAME(name, value, text)                                                       \
    case EDGC_##name:                                                                              \
        return "EDGC_" #name;
        EDGC_STATUS_MAP(EDGC__STATUS_NAME)
#undef EDGC__STATUS_NAME
    }
    return "EDGC_UNKNOWN";
}

unsigned edgc_version_number(void)
{
    return EDGC_VERSION_NUMBER;
}

#define EDGC__STR2(x) #x
#define EDGC__STR(x)  EDGC__STR2(x)

const char* edgc_version_string(void)
{
    return EDGC__STR(EDGC_VERSION_MAJOR) "." EDGC__STR(EDGC_VERSION_MINOR) "." EDGC__STR(
        EDGC_VERSION_PATCH);
}

void edgc__msg(char* why, size_t why_len, const char* fmt, ...)
{
    if (why == NULL || why_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}
