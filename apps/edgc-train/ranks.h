/*
 * ranks.h - this process's place in the MPI job, and how ranks report and fail together.
 * Every fatal error is one line and every rank exits 1: die() is for errors all ranks reach the
 * same way (rank 0 prints), check_all() agrees on a check that may fail on some ranks only (a
 * file), and agree_values() stops every rank when named values differ between them.
 */
#ifndef EDGC_TRAIN_RANKS_H
#define EDGC_TRAIN_RANKS_H

#include <stddef.h>

extern int g_rank, g_world;

/* MPI_Init and the two globals above. */
void ranks_init(int* argc, char*** argv);
/* printf on rank 0 only, flushed. */
void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/* One line "edgc-train: ..." from rank 0, MPI_Finalize, exit 1 on every rank. */
void die(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* If ok is 0 on any rank, the lowest such rank prints why and every rank exits 1. */
void check_all(int ok, const char* why);
/* Compares n named values (their text) across ranks. On a difference every rank exits 1; rank 0
 * names the first differing value, and every rank that differs from rank 0 says what it has. */
void agree_values(const char* const* names, const char* const* values, size_t n);

#endif
