/*
 * corpus_main.c - replays files through a fuzz harness without libFuzzer: the regression run of
 * the seed corpus in every `make test` (and under ASan/UBSan in its sanitizer pass).
 *   fuzz_X DIR_OR_FILE...
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char* path)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t* b = malloc(n > 0 ? (size_t)n : 1);
    int ok = b != NULL && fread(b, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) LLVMFuzzerTestOneInput(b, (size_t)n);
    free(b);
    return ok ? 0 : -1;
}

int main(int argc, char** argv)
{
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "no such corpus: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad |= run_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR* d = opendir(argv[i]);
        struct dirent* e;
        char p[4096];
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            bad |= run_file(p) != 0;
            files++;
        }
        if (d != NULL) closedir(d);
    }
    printf("%d inputs replayed\n", files);
    return bad || files == 0;
}
