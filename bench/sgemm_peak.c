/* sgemm_peak: measures the single-precision GEMM rate OpenBLAS reaches on this
 * machine, as the compute floor for bench/run.sh (FLOPs per image divided by
 * this rate is the time no engine can beat with fp32 GEMM-shaped work).
 *
 * --engine dnnl measures oneDNN's sgemm instead (run.sh runs both and takes
 * the best: OpenBLAS 0.3.21 does not know every AVX-512 CPU and may fall back
 * to SSE3 "Prescott" kernels there).
 *
 * OpenBLAS is loaded with dlopen at run time rather than linked: bench/
 * CMakeLists.txt turns every .c file in bench/ into an executable linked only with
 * kennel, so a link-time -lopenblas here would break that build. run.sh
 * compiles this file on its own (cc -O2 sgemm_peak.c) and the CMake target
 * builds too. Needs libopenblas0 (the pthread variant) installed.
 *
 * Prints one JSON line: the library, OpenBLAS's config and core name (which
 * kernel set it picked; OPENBLAS_CORETYPE changes it), per-size best and
 * median GFLOP/s, and the peak (best over sizes). Before timing it checks one
 * product against a plain triple loop, since some OpenBLAS builds compute
 * wrong results on some CPUs.
 *
 * Single-threaded driver; OpenBLAS runs its own threads (--threads).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cblas enums (stable ABI values from cblas.h). */
enum { ROW_MAJOR = 101, NO_TRANS = 111 };

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta,
                         float *c, int ldc);
typedef void (*set_threads_fn)(int n);
typedef int (*get_threads_fn)(void);
typedef char *(*get_str_fn)(void);

/* oneDNN's row-major sgemm (dnnl.h), for --engine dnnl. */
typedef int (*dnnl_sgemm_fn)(char ta, char tb, long long m, long long n, long long k,
                             float alpha, const float *a, long long lda, const float *b,
                             long long ldb, float beta, float *c, long long ldc);
static dnnl_sgemm_fn dnnl_sgemm_p;

static void dnnl_adapt(int order, int ta, int tb, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc)
{
    (void)order;
    dnnl_sgemm_p(ta == NO_TRANS ? 'N' : 'T', tb == NO_TRANS ? 'N' : 'T', m, n, k, alpha, a, lda,
                 b, ldb, beta, c, ldc);
}

typedef struct blas {
    void *lib;
    const char *path;
    sgemm_fn sgemm;
    set_threads_fn set_threads;
    get_threads_fn get_threads;
    get_str_fn config, corename;
} blas;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* oneDNN's JIT sgemm: it recognises every AVX-512 CPU, where an OpenBLAS
 * that does not know the CPU model falls back to old kernels. Threads come
 * from OMP_NUM_THREADS (run.sh sets it). */
static int dnnl_open(blas *b)
{
    static const char *candidates[] = {"libdnnl.so.3", "libdnnl.so.2", "libdnnl.so", NULL};
    memset(b, 0, sizeof(*b));
    for (int i = 0; candidates[i] && !b->lib; i++)
        if ((b->lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL)))
            b->path = candidates[i];
    if (!b->lib) {
        fprintf(stderr, "sgemm_peak: cannot load oneDNN: %s\n", dlerror());
        return -1;
    }
    dnnl_sgemm_p = (dnnl_sgemm_fn)dlsym(b->lib, "dnnl_sgemm");
    if (!dnnl_sgemm_p) {
        fprintf(stderr, "sgemm_peak: %s has no dnnl_sgemm\n", b->path);
        return -1;
    }
    b->sgemm = dnnl_adapt;
    return 0;
}

static int blas_open(blas *b, const char *path)
{
    static const char *candidates[] = {"libopenblas.so.0", "libopenblas.so",
                                       "libopenblasp.so.0", NULL};
    memset(b, 0, sizeof(*b));
    for (int i = 0; path ? i == 0 : candidates[i] != NULL; i++) {
        const char *p = path ? path : candidates[i];
        b->lib = dlopen(p, RTLD_NOW | RTLD_LOCAL);
        if (b->lib) {
            b->path = p;
            break;
        }
    }
    if (!b->lib) {
        fprintf(stderr, "sgemm_peak: cannot load OpenBLAS: %s\n", dlerror());
        return -1;
    }
    /* POSIX guarantees data and function pointers convert for dlsym. */
    b->sgemm = (sgemm_fn)dlsym(b->lib, "cblas_sgemm");
    b->set_threads = (set_threads_fn)dlsym(b->lib, "openblas_set_num_threads");
    b->get_threads = (get_threads_fn)dlsym(b->lib, "openblas_get_num_threads");
    b->config = (get_str_fn)dlsym(b->lib, "openblas_get_config");
    b->corename = (get_str_fn)dlsym(b->lib, "openblas_get_corename");
    if (!b->sgemm) {
        fprintf(stderr, "sgemm_peak: %s has no cblas_sgemm\n", b->path);
        return -1;
    }
    return 0;
}

static void fill(float *p, size_t n, unsigned seed)
{
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

/* Max abs difference of one product against a naive loop. */
static double check(const blas *b, int n)
{
    float *a = malloc(sizeof(float) * n * n), *bb = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    double err = -1;
    if (!a || !bb || !c)
        goto out;
    fill(a, (size_t)n * n, 1);
    fill(bb, (size_t)n * n, 2);
    b->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1.0f, a, n, bb, n, 0.0f, c, n);
    err = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double ref = 0;
            for (int k = 0; k < n; k++)
                ref += (double)a[(size_t)i * n + k] * bb[(size_t)k * n + j];
            double d = fabs(ref - c[(size_t)i * n + j]);
            if (d > err || d != d)
                err = d;
        }
out:
    free(a);
    free(bb);
    free(c);
    return err;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 1.0; /* timed per size */
    const char *lib = NULL;
    int use_dnnl = 0;
    int sizes[8] = {1024, 2048, 3072}, n_sizes = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--lib") && i + 1 < argc)
            lib = argv[++i];
        else if (!strcmp(argv[i], "--engine") && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "dnnl") && strcmp(v, "openblas")) {
                fprintf(stderr, "sgemm_peak: --engine '%s' (openblas or dnnl)\n", v);
                return 2;
            }
            use_dnnl = !strcmp(v, "dnnl");
        }
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            n_sizes = 0;
            for (char *s = strtok(argv[++i], ","); s && n_sizes < 8; s = strtok(NULL, ","))
                sizes[n_sizes++] = atoi(s);
        } else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--seconds S] [--sizes 1024,2048] [--lib PATH]\n"
                    "       [--engine openblas|dnnl]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads < 1 || seconds <= 0 || n_sizes < 1) {
        fprintf(stderr, "sgemm_peak: bad arguments\n");
        return 2;
    }

    blas b;
    if ((use_dnnl ? dnnl_open(&b) : blas_open(&b, lib)) != 0)
        return 1;
    if (b.set_threads)
        b.set_threads(threads);
    double err = check(&b, 192);

    printf("{\"engine\":\"%s\",\"lib\":\"%s\",\"config\":\"%s\",\"corename\":\"%s\","
           "\"threads\":%d,\"check_max_abs_err\":%.3g,\"sizes\":[",
           use_dnnl ? "dnnl_sgemm" : "openblas_sgemm", b.path, b.config ? b.config() : "?", b.corename ? b.corename() : "?",
           b.get_threads ? b.get_threads() : threads, err);
    double peak = 0;
    for (int si = 0; si < n_sizes; si++) {
        int n = sizes[si];
        size_t nn = (size_t)n * n;
        float *A = malloc(nn * sizeof(float)), *B = malloc(nn * sizeof(float));
        float *C = malloc(nn * sizeof(float));
        if (!A || !B || !C) {
            fprintf(stderr, "sgemm_peak: out of memory at n=%d\n", n);
            return 1;
        }
        fill(A, nn, 3);
        fill(B, nn, 4);
        memset(C, 0, nn * sizeof(float));
        double flop = 2.0 * n * n * (double)n;
        b.sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n); /* warm */
        enum { MAX_REPS = 256 };
        double rates[MAX_REPS];
        int reps = 0;
        double t_end = now_s() + seconds;
        while (reps < MAX_REPS && (reps < 3 || now_s() < t_end)) {
            double t0 = now_s();
            b.sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
            rates[reps++] = flop / (now_s() - t0) / 1e9;
        }
        qsort(rates, reps, sizeof(double), cmp_double);
        double best = rates[reps - 1], med = rates[reps / 2];
        if (best > peak)
            peak = best;
        printf("%s{\"n\":%d,\"reps\":%d,\"best_gflops\":%.1f,\"median_gflops\":%.1f}",
               si ? "," : "", n, reps, best, med);
        free(A);
        free(B);
        free(C);
    }
    printf("],\"peak_gflops\":%.1f}\n", peak);
    return err >= 0 && err < 1e-2 ? 0 : 3;
}
