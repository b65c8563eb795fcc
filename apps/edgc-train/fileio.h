/*
 * fileio.h - reading a whole input file (data, training state, manifest) with one-line errors.
 */
#ifndef EDGC_TRAIN_FILEIO_H
#define EDGC_TRAIN_FILEIO_H

#include <stddef.h>

/* Reads path into a malloc'ed *buf (caller frees) of *len bytes. `what` names the file in the
 * reason ("data file"). 0, or -1 with a reason: missing, a directory, unreadable. */
int read_whole_file(const char* path, const char* what, unsigned char** buf, size_t* len, char* why,
                    size_t wl);

#endif
