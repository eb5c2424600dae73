/* Data-parallel training over MPI ranks: the few collectives the training
 * loop needs (sum, min, broadcast), and a single-process fallback.
 *
 * Built with MPI when CMake found it (KN_HAVE_MPI); otherwise every
 * collective is the identity on one process and kn__dist_init refuses a
 * multi-process run with a message saying how to get MPI.
 *
 * One communicator per process (MPI_COMM_WORLD): kennel train is one job
 * per process, so the state is process-global. */
#include "train_int.h"

#include <limits.h>
#include <string.h>

#ifdef KN_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank, g_size = 1;
#ifdef KN_HAVE_MPI
static bool g_started;
#endif

bool kn_train_mpi_built(void)
{
#ifdef KN_HAVE_MPI
    return true;
#else
    return false;
#endif
}

kn_status kn__dist_init(int *rank, int *size, kn_err *e)
{
#ifdef KN_HAVE_MPI
    if (!g_started) {
        int inited = 0;
        MPI_Initialized(&inited);
        int provided = 0;
        if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return kn_err_set(e, KN_IO, "MPI_Init failed: is this process started by mpirun?");
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        g_started = true;
    }
    *rank = g_rank;
    *size = g_size;
    return KN_OK;
#else
    (void)rank;
    (void)size;
    return kn_err_set(e, KN_UNSUPPORTED,
                      "multi-process training: this kennel was built without MPI (install "
                      "libopenmpi-dev and openmpi-bin, then reconfigure with cmake)");
#endif
}

void kn_train_mpi_finish(int code)
{
#ifdef KN_HAVE_MPI
    if (!g_started)
        return;
    g_started = false;
    /* a failed rank takes the others down rather than leaving them waiting
     * in a collective */
    if (code != 0 && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
    MPI_Finalize();
#else
    (void)code;
#endif
}

int kn__dist_rank(void)
{
    return g_rank;
}

int kn__dist_size(void)
{
    return g_size;
}

/* MPI counts are int: large buffers go in slices. */
#define SLICE ((size_t)1 << 28)

void kn__dist_sum_f(float *buf, size_t n)
{
#ifdef KN_HAVE_MPI
    if (g_size < 2)
        return;
    for (size_t o = 0; o < n; o += SLICE) {
        int cnt = (int)(n - o < SLICE ? n - o : SLICE);
        MPI_Allreduce(MPI_IN_PLACE, buf + o, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)buf;
    (void)n;
#endif
}

void kn__dist_sum_d(double *buf, int n)
{
#ifdef KN_HAVE_MPI
    if (g_size > 1)
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)buf;
    (void)n;
#endif
}

void kn__dist_reduce_sum_f(float *buf, size_t n)
{
#ifdef KN_HAVE_MPI
    if (g_size < 2)
        return;
    for (size_t o = 0; o < n; o += SLICE) {
        int cnt = (int)(n - o < SLICE ? n - o : SLICE);
        MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : buf + o, buf + o, cnt, MPI_FLOAT, MPI_SUM, 0,
                   MPI_COMM_WORLD);
    }
#else
    (void)buf;
    (void)n;
#endif
}

void kn__dist_reduce_min_i(int *buf, int n)
{
#ifdef KN_HAVE_MPI
    if (g_size > 1)
        MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : buf, buf, n, MPI_INT, MPI_MIN, 0,
                   MPI_COMM_WORLD);
#else
    (void)buf;
    (void)n;
#endif
}

void kn__dist_bcast(void *buf, size_t bytes)
{
#ifdef KN_HAVE_MPI
    if (g_size < 2)
        return;
    for (size_t o = 0; o < bytes; o += SLICE)
        MPI_Bcast((char *)buf + o, (int)(bytes - o < SLICE ? bytes - o : SLICE), MPI_BYTE, 0,
                  MPI_COMM_WORLD);
#else
    (void)buf;
    (void)bytes;
#endif
}

bool kn__dist_agree(uint64_t v)
{
#ifdef KN_HAVE_MPI
    if (g_size < 2)
        return true;
    uint64_t lo = v, hi = v;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
#else
    (void)v;
    return true;
#endif
}
