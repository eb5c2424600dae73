/* kn_nn_exec_share_weights: the oneDNN executor's reordered weights move into
 * one file that executors of the same weights map read-only and shared.
 *  - results are bit-identical before and after, for the prepared batch size
 *    and for one planned later (converted from the mapped layout);
 *  - a second executor of the same weights maps the same file, unwritten;
 *  - a file with a flipped data byte, truncated, or with a bad header is
 *    detected and rebuilt, and executors mapping the old file keep working;
 *  - other weights get another file; the reference backend is refused; a
 *    directory that cannot be made is an error and the executor still runs
 *    on its private copy; sharing twice is refused. */
#include "kennel/core.h"
#include "kennel/nn.h"

#include "kn_test.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAXB = 4, CLASSES = 10 };

static char dir[256];

static kn_nn_graph *make_graph(uint64_t seed)
{
    kn_nn_graph *g = kn_nn_graph_new();
    kn_nn_window w3 = {3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
    kn_nn_window w3s = {3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
    int x = kn_nn_input(g, 3, 16, 16);
    x = kn_nn_conv(g, x, "c1", 32, &w3s, 1, true, KN_ACT_RELU);
    x = kn_nn_conv(g, x, "c2", 64, &w3, 1, true, KN_ACT_RELU);
    x = kn_nn_gap(g, x);
    x = kn_nn_flatten(g, x);
    x = kn_nn_linear(g, x, "fc", CLASSES, true, KN_ACT_NONE);
    kn_err e = {0};
    if (kn_nn_graph_finalize(g, &e) != KN_OK) {
        fprintf(stderr, "finalize: %s\n", e.msg);
        exit(1);
    }
    kn_nn_graph_init_params(g, seed, true);
    return g;
}

static float input[MAXB * 3 * 16 * 16];

static kn_nn_exec *make_exec(const kn_nn_graph *g, kn_nn_backend b)
{
    kn_err e = {0};
    kn_nn_exec_params p = kn_nn_exec_default_params();
    p.backend = b;
    p.max_batch = MAXB;
    kn_nn_exec *x = NULL;
    if (kn_nn_exec_new(g, &p, &x, &e) != KN_OK) {
        fprintf(stderr, "executor: %s\n", e.msg);
        exit(1);
    }
    return x;
}

/* Runs batch MAXB then batch 1 into out (MAXB + 1 rows). */
static void run(kn_nn_exec *x, float *out)
{
    kn_err e = {0};
    KN_CHECK_INT(kn_nn_exec_run(x, input, MAXB, out, &e), KN_OK);
    KN_CHECK_INT(kn_nn_exec_run(x, input, 1, out + MAXB * CLASSES, &e), KN_OK);
}

static bool mapped_shared(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4600];
    bool found = false;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, path) && strstr(line, " r--s "))
            found = true;
    if (f)
        fclose(f);
    return found;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void replace_file(const char *path, const void *p, size_t n)
{
    char tmp[4200];
    kn_err e = {0};
    snprintf(tmp, sizeof tmp, "%s.test", path);
    KN_CHECK_INT(kn_file_write(tmp, p, n, &e), KN_OK);
    KN_CHECK(rename(tmp, path) == 0);
}

/* A fresh executor of g shares into dir; returns whether it wrote the file
 * and checks its results against want. */
static bool share_fresh(const kn_nn_graph *g, const float *want, const char *want_path)
{
    kn_nn_exec *x = make_exec(g, KN_NN_DNNL);
    kn_nn_shared_weights info;
    kn_err e = {0};
    kn_status rc = kn_nn_exec_share_weights(x, dir, &info, &e);
    KN_CHECK_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "share: %s\n", e.msg);
    KN_CHECK_STR(info.path, want_path);
    float got[(MAXB + 1) * CLASSES];
    run(x, got);
    KN_CHECK(memcmp(got, want, sizeof got) == 0);
    kn_nn_exec_free(x);
    return info.built;
}

static void test_share(void)
{
    kn_rng r;
    kn_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof input / sizeof input[0]; i++)
        input[i] = (float)(kn_rng_uniform(&r) * 2 - 1);
    kn_nn_graph *g = make_graph(5);
    float before[(MAXB + 1) * CLASSES], after[(MAXB + 1) * CLASSES];

    /* the first executor writes the file and maps it */
    kn_nn_exec *a = make_exec(g, KN_NN_DNNL);
    run(a, before);
    kn_nn_shared_weights info;
    kn_err e = {0};
    KN_CHECK_INT(kn_nn_exec_share_weights(a, dir, &info, &e), KN_OK);
    KN_CHECK(info.built);
    KN_CHECK(info.bytes >= (size_t)(32 * 3 * 9 + 64 * 32 * 9 + 64 * CLASSES) * sizeof(float));
    KN_CHECK(file_size(info.path) >= (off_t)info.bytes);
    KN_CHECK(mapped_shared(info.path));
    char path[4096];
    snprintf(path, sizeof path, "%s", info.path);
    run(a, after);
    KN_CHECK(memcmp(before, after, sizeof before) == 0);
    KN_CHECK_INT(kn_nn_exec_share_weights(a, dir, &info, &e), KN_INVALID);

    /* the same weights elsewhere: the same file, not rewritten */
    KN_CHECK(!share_fresh(g, before, path));

    /* Damaged files. They replace the file rather than write into it, as
     * damage found at start-up would: `a` keeps mapping the file it checked
     * (writing into a mapped file would change its weights under it). */
    kn_buf good;
    kn_buf_init(&good, (size_t)1 << 30);
    KN_REQUIRE(kn_file_read(path, &good, &e) == KN_OK);
    size_t sz = good.len;
    unsigned char *bad = malloc(sz);
    KN_REQUIRE(bad != NULL);

    memcpy(bad, good.data, sz); /* a flipped byte near the end of the data */
    bad[sz - 100] ^= 0x40;
    replace_file(path, bad, sz);
    KN_CHECK(share_fresh(g, before, path));
    KN_CHECK(!share_fresh(g, before, path)); /* rebuilt right */

    replace_file(path, good.data, sz / 2); /* truncated */
    KN_CHECK(share_fresh(g, before, path));
    KN_CHECK_INT(file_size(path), (off_t)sz);

    memcpy(bad, good.data, sz); /* a bad header */
    memcpy(bad, "XXXXXXXX", 8);
    replace_file(path, bad, sz);
    KN_CHECK(share_fresh(g, before, path));

    replace_file(path, "", 0); /* empty */
    KN_CHECK(share_fresh(g, before, path));
    free(bad);
    kn_buf_deinit(&good);

    /* the first executor still runs on the file it mapped */
    run(a, after);
    KN_CHECK(memcmp(before, after, sizeof before) == 0);
    kn_nn_exec_free(a);

    /* other weights, another file */
    kn_nn_graph *g2 = make_graph(6);
    kn_nn_exec *b = make_exec(g2, KN_NN_DNNL);
    KN_CHECK_INT(kn_nn_exec_share_weights(b, dir, &info, &e), KN_OK);
    KN_CHECK(info.built);
    KN_CHECK(strcmp(info.path, path) != 0);
    kn_nn_exec_free(b);
    kn_nn_graph_free(g2);

    /* no such directory: an error, and the private copy still serves */
    kn_nn_exec *d = make_exec(g, KN_NN_DNNL);
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/file/sub", dir);
    snprintf(path, sizeof path, "%s/file", dir);
    KN_CHECK_INT(kn_file_write(path, "x", 1, &e), KN_OK);
    KN_CHECK_INT(kn_nn_exec_share_weights(d, nodir, &info, &e), KN_IO);
    run(d, after);
    KN_CHECK(memcmp(before, after, sizeof before) == 0);
    kn_nn_exec_free(d);

    /* the reference backend has nothing to share */
    kn_nn_exec *rx = make_exec(g, KN_NN_REF);
    KN_CHECK_INT(kn_nn_exec_share_weights(rx, dir, &info, &e), KN_UNSUPPORTED);
    kn_nn_exec_free(rx);
    kn_nn_graph_free(g);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kn_shw_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    KN_RUN(test_share);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return kn_test_finish();
}
