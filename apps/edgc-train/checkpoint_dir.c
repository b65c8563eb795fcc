/*
 * checkpoint_dir.c - the checkpoint directory layout; see checkpoint_dir.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ranks.h"

enum { PATH_LEN = 4096, WHY_LEN = 8192 };

/* "step-00000300" -> 300; -1 for any other name. */
static long long step_of(const char* name)
{
    long long s;
    char tail;
    if (strncmp(name, "step-", 5) != 0 || strlen(name) != 13 ||
        strspn(name + 5, "0123456789") != 8 || sscanf(name + 5, "%lld%c", &s, &tail) != 1)
        return -1;
    return s;
}

static int cmp_desc(const void* a, const void* b)
{
    long long x = *(const long long*)a, y = *(const long long*)b;
    return (x < y) - (x > y);
}

/* The steps of DIR's step directories, newest first; *n of them (malloc'ed array, or NULL). */
static long long* list_steps(const char* dir, size_t* n)
{
    *n = 0;
    DIR* d = opendir(dir);
    if (d == NULL) return NULL;
    size_t cap = 0;
    long long* steps = NULL;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        long long s = step_of(e->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            long long* grown = realloc(steps, cap * sizeof *steps);
            if (grown == NULL) break;
            steps = grown;
        }
        steps[(*n)++] = s;
    }
    closedir(d);
    if (*n > 0) qsort(steps, *n, sizeof *steps, cmp_desc);
    return steps;
}

/* Removes a directory of plain files (a step directory). 0 or -1. */
static int remove_tree(const char* path)
{
    DIR* d = opendir(path);
    if (d == NULL) return errno == ENOENT ? 0 : -1;
    struct dirent* e;
    char p[PATH_LEN];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(path);
}

/* Makes a directory's entries (a rename, a new file) durable. */
static int sync_dir(const char* path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void step_dir(char* out, size_t n, const char* dir, long long step)
{
    snprintf(out, n, "%s/step-%08lld", dir, step);
}

/* Rank 0, after a save: every step directory but `current` and the keep - 1 newest complete ones
 * before it goes (later ones belong to a run that was resumed from an older checkpoint), and so
 * do temporary links left by a crash. Failures here cost disk space, not data: warn only. */
static void prune(const char* dir, long long current, int keep)
{
    size_t n;
    long long* steps = list_steps(dir, &n);
    int kept = 1;
    char p[PATH_LEN], m[PATH_LEN + 16];
    for (size_t i = 0; i < n; i++) {
        if (steps[i] == current) continue;
        step_dir(p, sizeof p, dir, steps[i]);
        snprintf(m, sizeof m, "%s/MANIFEST", p);
        if (steps[i] < current && kept < keep && access(m, F_OK) == 0) {
            kept++;
            continue;
        }
        if (remove_tree(p) != 0)
            fprintf(stderr, "edgc-train: warning: cannot remove old checkpoint '%s': %s\n", p,
                    strerror(errno));
    }
    free(steps);
    DIR* d = opendir(dir);
    struct dirent* e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "latest.tmp.", 11) == 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d != NULL) closedir(d);
}

/* Rank 0: writes the manifest into sdir and points DIR/latest at it. 0 or -1 with a reason. */
static int publish(const char* dir, const char* sdir, const ckpt_manifest* mf, char* why, size_t wl)
{
    char p[PATH_LEN + 96], tmp[PATH_LEN + 96];
    snprintf(p, sizeof p, "%s/MANIFEST", sdir);
    if (ckpt_manifest_save(p, mf, why, wl) != 0) return -1;
    if (sync_dir(sdir) != 0) {
        snprintf(why, wl, "cannot sync '%s': %s", sdir, strerror(errno));
        return -1;
    }
    const char* base = strrchr(sdir, '/') + 1; /* relative: the directory may be moved */
    snprintf(tmp, sizeof tmp, "%s/latest.tmp.%ld", dir, (long)getpid());
    snprintf(p, sizeof p, "%s/latest", dir);
    unlink(tmp);
    if (symlink(base, tmp) != 0 || rename(tmp, p) != 0 || sync_dir(dir) != 0) {
        snprintf(why, wl, "cannot point '%s' at %s: %s", p, base, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void ckdir_save(const char* dir, int keep, const gpt2* whole, const gpt2* own, int stages,
                const train_state* st, const void* blob, size_t blob_len)
{
    char why[WHY_LEN] = "", sdir[PATH_LEN], path[PATH_LEN + 96];
    step_dir(sdir, sizeof sdir, dir, (long long)st->step);
    int ok = 1;
    if (g_rank == 0) { /* a fresh directory: a crashed attempt at this step may have left one */
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(why, sizeof why, "cannot create --out directory '%s': %s", dir,
                     strerror(errno));
            ok = 0;
        } else if (remove_tree(sdir) != 0 || mkdir(sdir, 0755) != 0) {
            snprintf(why, sizeof why, "cannot create checkpoint directory '%s': %s", sdir,
                     strerror(errno));
            ok = 0;
        }
    }
    check_all(ok, why);

    char name[64];
    ckpt_digest mine = {0}, model = {0};
    ckpt_state_name(name, sizeof name, g_rank);
    snprintf(path, sizeof path, "%s/%s", sdir, name);
    ok = ckpt_save_state(path, st, own, blob, blob_len, &mine, why, sizeof why) == 0;
    if (ok && g_rank == 0) {
        snprintf(path, sizeof path, "%s/model.bin", sdir);
        ok = ckpt_save_model(path, whole, &model, why, sizeof why) == 0;
    }
    check_all(ok, why);

    ckpt_manifest mf = {.step = st->step, .world = g_world, .stages = stages, .model = model};
    if (g_rank == 0) {
        mf.states = malloc((size_t)g_world * sizeof *mf.states);
        if (mf.states == NULL) die("out of memory for the manifest");
    }
    MPI_Gather(&mine, 2, MPI_UINT64_T, mf.states, 2, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (g_rank == 0) ok = publish(dir, sdir, &mf, why, sizeof why) == 0;
    free(mf.states);
    check_all(ok, why);
    if (g_rank == 0) prune(dir, st->step, keep);
}

/* Loads and verifies the checkpoint in sdir against its manifest. 0, -1 (incomplete or damaged:
 * try an older one) or -2 (not for this job, another world size or model shape: stop). */
static int try_load(const char* sdir, gpt2* whole, gpt2* own, int stages, train_state* st,
                    void** blob, size_t* blob_len, char* why, size_t wl)
{
    char path[PATH_LEN + 96], name[64];
    ckpt_manifest mf;
    ckpt_digest d;
    snprintf(path, sizeof path, "%s/MANIFEST", sdir);
    if (ckpt_manifest_load(path, &mf, why, wl) != 0) return -1;
    int rc = 0;
    if (mf.world != g_world) {
        snprintf(why, wl, "'%s' was written by %d ranks; this run has %d", sdir, mf.world, g_world);
        rc = -2;
    } else if (mf.stages != stages) {
        snprintf(why, wl,
                 "'%s' was written by %d pipeline stages x %d replicas; this run has %d x %d "
                 "(--pp must match)",
                 sdir, mf.stages, mf.world / mf.stages, stages, g_world / stages);
        rc = -2;
    }
    snprintf(path, sizeof path, "%s/model.bin", sdir);
    if (rc == 0) {
        int loaded = ckpt_load_model(path, whole, &d, why, wl);
        rc = loaded == CKPT_OTHER_SHAPE ? -2 : loaded != 0 ? -1 : 0;
    }
    if (rc == 0 && (d.size != mf.model.size || d.hash != mf.model.hash)) {
        snprintf(why, wl, "'%s' does not match its manifest (size or checksum)", path);
        rc = -1;
    }
    ckpt_state_name(name, sizeof name, g_rank);
    snprintf(path, sizeof path, "%s/%s", sdir, name);
    if (rc == 0 && ckpt_load_state(path, st, own, blob, blob_len, &d, why, wl) != 0) rc = -1;
    if (rc == 0 && (d.size != mf.states[g_rank].size || d.hash != mf.states[g_rank].hash)) {
        snprintf(why, wl, "'%s' does not match its manifest (size or checksum)", path);
        rc = -1;
    }
    if (rc == 0 && st->step != mf.step) {
        snprintf(why, wl, "'%s' is at step %lld, its manifest says %lld", path, (long long)st->step,
                 (long long)mf.step);
        rc = -1;
    }
    if (rc != 0) {
        free(*blob);
        *blob = NULL;
        *blob_len = 0;
    }
    ckpt_manifest_free(&mf);
    return rc;
}

/* Rank 0: the candidate directories, best first: dir itself when it is a step directory, else
 * where `latest` points, then every step directory newest first. */
static char* candidates(const char* dir, size_t* n)
{
    char p[PATH_LEN + 96], link[256];
    *n = 0;
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    if (access(p, F_OK) == 0) {
        char* one = malloc(PATH_LEN);
        if (one != NULL) snprintf(one, PATH_LEN, "%s", dir), *n = 1;
        return one;
    }
    size_t ns;
    long long* steps = list_steps(dir, &ns);
    char* list = malloc((ns + 1) * PATH_LEN);
    if (list == NULL) {
        free(steps);
        return NULL;
    }
    snprintf(p, sizeof p, "%s/latest", dir);
    ssize_t k = readlink(p, link, sizeof link - 1);
    long long first = -1;
    if (k > 0) {
        link[k] = '\0';
        first = step_of(link);
    }
    if (first >= 0) step_dir(list + PATH_LEN * (*n)++, PATH_LEN, dir, first);
    for (size_t i = 0; i < ns; i++)
        if (steps[i] != first) step_dir(list + PATH_LEN * (*n)++, PATH_LEN, dir, steps[i]);
    free(steps);
    return list;
}

void ckdir_resume(const char* dir, gpt2* whole, gpt2* own, int stages, train_state* st, void** blob,
                  size_t* blob_len, char* used, size_t used_len)
{
    char why[WHY_LEN] = "", sdir[PATH_LEN];
    size_t n = 0;
    char* list = g_rank == 0 ? candidates(dir, &n) : NULL;
    unsigned long long count = n;
    MPI_Bcast(&count, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    if (count == 0) {
        free(list);
        die("--resume %s: no checkpoint there (no MANIFEST, no step-NNNNNNNN directories)", dir);
    }
    for (size_t i = 0; i < count; i++) {
        if (g_rank == 0) memcpy(sdir, list + PATH_LEN * i, PATH_LEN);
        MPI_Bcast(sdir, PATH_LEN, MPI_CHAR, 0, MPI_COMM_WORLD);
        int rc = try_load(sdir, whole, own, stages, st, blob, blob_len, why, sizeof why);
        int worst = rc, first = rc != 0 ? g_rank : g_world;
        MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (worst == 0) {
            free(list);
            snprintf(used, used_len, "%s", sdir);
            return;
        }
        free(*blob);
        *blob = NULL;
        *blob_len = 0;
        int last = i + 1 == count || worst == -2;
        if (g_rank == first)
            fprintf(stderr, "edgc-train: %s%s%s\n",
                    last ? "" : "skipping an incomplete checkpoint: ", why,
                    last && worst == -1 ? " (no older complete checkpoint to fall back on)" : "");
        if (last) {
            free(list);
            MPI_Finalize();
            exit(1);
        }
    }
}
