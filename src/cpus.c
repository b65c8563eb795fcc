/*
 * cpus.c - how many CPUs this process may run on: the thread count edgc_config.threads = 0
 * stands for. Under mpirun each rank is usually bound to its
 * own core(s), so the affinity mask, not the machine's CPU count, is what a rank may use.
 */
#define _GNU_SOURCE
#include "edgc_internal.h"

#include <sched.h>
#include <unistd.h>

int edgc__cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 1024 ? (int)n : 1;
}

int edgc__threads(int threads)
{
    return threads > 0 ? threads : edgc__cpus_available();
}
