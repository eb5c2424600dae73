/* kennel dataset: check an ImageFolder data set, or write a synthetic one.
 *
 *   kennel dataset check DIR [--seed N] [--split T,V,S]
 *       decodes every file, prints counts per split and class and the
 *       unreadable files; exit 1 when any file is unreadable.
 *   kennel dataset synth DIR [--classes N] [--per-class N] [--seed N]
 *
 * Exit codes: 0 success, 1 a failure while working, 2 bad usage. */
#include "cli.h"

#include "kennel/data.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_MAX ((size_t)256 << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kennel dataset check DIR [--seed N] [--split TRAIN,VALID,TEST]\n"
            "       kennel dataset synth DIR [--classes N] [--per-class N] [--seed N]\n"
            "\n"
            "check: decode every image of an ImageFolder data set (DIR/train/<class>/...,\n"
            "  optional DIR/valid or DIR/val and DIR/test; or DIR/<class>/... split by\n"
            "  ratio) and print images and unreadable files per split and class.\n"
            "  Exit 1 when a file is unreadable.\n"
            "  --seed N            seed of the split of a DIR/<class>/ layout (default 0)\n"
            "  --split T,V,S       its ratios (default 0.7,0.15,0.15)\n"
            "\n"
            "synth: write a small synthetic data set of coloured shapes (JPEG and PNG)\n"
            "  into DIR (created; must be empty if it exists).\n"
            "  --classes N         classes, 1..64 (default 4)\n"
            "  --per-class N       training images per class (default 24); valid and\n"
            "                      test get a quarter of that, at least 1\n"
            "  --seed N            seed (default 0); the same seed gives the same files\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    uint64_t v;
    if (parse_u64(s, &v) || v < (uint64_t)lo || v > (uint64_t)hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_split(const char *s, double r[KN_SPLIT_COUNT])
{
    const char *p = s;
    for (int i = 0; i < KN_SPLIT_COUNT; i++) {
        char *end;
        errno = 0;
        r[i] = strtod(p, &end);
        if (end == p || errno)
            return -1;
        if (i < KN_SPLIT_COUNT - 1) {
            if (*end != ',')
                return -1;
            p = end + 1;
        } else if (*end) {
            return -1;
        }
    }
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seed", required_argument, NULL, 's'},
        {"split", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kn_dataset_params dp = kn_dataset_default_params();
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (parse_u64(optarg, &dp.seed)) {
                fprintf(stderr, "kennel dataset check: --seed '%s' is not a number\n", optarg);
                return 2;
            }
            break;
        case 'r':
            if (parse_split(optarg, dp.ratio)) {
                fprintf(stderr,
                        "kennel dataset check: --split '%s' is not three numbers like "
                        "0.7,0.15,0.15\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "kennel dataset check: expected one DIR\n");
        usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    kn_err e;
    kn_err_clear(&e);
    kn_dataset *d = NULL;
    kn_status rc = kn_dataset_open(dir, &dp, &d, &e);
    if (rc) {
        fprintf(stderr, "kennel dataset check: %s\n", e.msg);
        /* bad ratios or a DIR that is not a folder are usage errors */
        return rc == KN_INVALID ? 2 : 1;
    }
    kn_buf report;
    kn_buf_init(&report, REPORT_MAX);
    int bad = 0;
    rc = kn_dataset_check(d, &report, &bad, &e);
    if (rc) {
        fprintf(stderr, "kennel dataset check: %s\n", e.msg);
    } else {
        printf("data set: %s (%d classes)\n", d->root, d->n_classes);
        if (d->generated_split)
            printf("split: generated with seed %" PRIu64
                   ", ratios train %.4g, valid %.4g, test %.4g\n",
                   dp.seed, d->ratio[KN_SPLIT_TRAIN], d->ratio[KN_SPLIT_VALID],
                   d->ratio[KN_SPLIT_TEST]);
        fwrite(report.data, 1, report.len, stdout);
        if (bad)
            fprintf(stderr, "kennel dataset check: %d unreadable file%s\n", bad,
                    bad == 1 ? "" : "s");
    }
    kn_buf_deinit(&report);
    kn_dataset_free(d);
    return rc || bad ? 1 : 0;
}

static int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"classes", required_argument, NULL, 'c'},
        {"per-class", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int classes = 4, per_class = 24;
    uint64_t seed = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_int(optarg, 1, 64, &classes)) {
                fprintf(stderr, "kennel dataset synth: --classes '%s' is not in [1, 64]\n",
                        optarg);
                return 2;
            }
            break;
        case 'n':
            if (parse_int(optarg, 1, 10000, &per_class)) {
                fprintf(stderr, "kennel dataset synth: --per-class '%s' is not in [1, 10000]\n",
                        optarg);
                return 2;
            }
            break;
        case 's':
            if (parse_u64(optarg, &seed)) {
                fprintf(stderr, "kennel dataset synth: --seed '%s' is not a number\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "kennel dataset synth: expected one DIR\n");
        usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    kn_err e;
    kn_err_clear(&e);
    if (kn_dataset_synth(dir, classes, per_class, seed, &e)) {
        fprintf(stderr, "kennel dataset synth: %s\n", e.msg);
        return 1;
    }
    int per_eval = per_class / 4 > 1 ? per_class / 4 : 1;
    printf("wrote %s: %d classes, %d train + %d valid + %d test images per class (seed %" PRIu64
           ")\n",
           dir, classes, per_class, per_eval, per_eval, seed);
    return 0;
}

int kn_cli_dataset(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    /* argv[1] becomes the subcommand's argv[0] */
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "synth") == 0)
        return cmd_synth(argc - 1, argv + 1);
    fprintf(stderr, "kennel dataset: unknown subcommand '%s' (check or synth)\n", argv[1]);
    usage(stderr);
    return 2;
}
