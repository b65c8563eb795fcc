/*
 * fileio.c - see fileio.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int read_whole_file(const char* path, const char* what, unsigned char** buf, size_t* len, char* why,
                    size_t wl)
{
    *buf = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) { /* ftell would report a nonsense size */
        snprintf(why, wl, "%s '%s' is %s, not a file", what, path,
                 S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file");
        return -1;
    }
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, wl, "cannot open %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) *buf = malloc(n > 0 ? (size_t)n : 1);
    int ok = *buf != NULL && fread(*buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) {
        snprintf(why, wl, "cannot read %s '%s'", what, path);
        free(*buf);
        *buf = NULL;
        return -1;
    }
    *len = (size_t)n;
    return 0;
}
