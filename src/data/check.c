/* kn_dataset_check: decode every file of every split and report counts per
 * class and split, and the files that cannot be read with the reason.
 *
 * Files are decoded in parallel (OpenMP) in chunks of CHUNK, each into its
 * own slot; the results are then folded in file order, so the report does
 * not depend on thread scheduling. Memory stays bounded by the chunk, not
 * the data set. The report goes to the caller's kn_buf, whose maximum
 * bounds it (KN_TOO_LARGE past it).
 */
#include "data_int.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256

static kn_status row(kn_buf *b, const char *split, const char *cls, int images, int bad)
{
    return kn_buf_appendf(b, "%-6s %-22s %6d  %10d\n", split, cls, images, bad);
}

kn_status kn_dataset_check(const kn_dataset *d, kn_buf *report, int *bad, kn_err *e)
{
    if (bad)
        *bad = 0;
    if (!d || !report)
        return kn_err_set(e, KN_INVALID, "check: no data set or report buffer");
    kn_status rc = KN_OK;
    kn_buf list;
    kn_buf_init(&list, report->max);
    int *n_img = calloc((size_t)d->n_classes * KN_SPLIT_COUNT, sizeof *n_img);
    int *n_bad = calloc((size_t)d->n_classes * KN_SPLIT_COUNT, sizeof *n_bad);
    kn_status *st = malloc(CHUNK * sizeof *st);
    kn_err *errs = malloc(CHUNK * sizeof *errs);
    if (!n_img || !n_bad || !st || !errs) {
        rc = kn_err_set(e, KN_NOMEM, "check: out of memory");
        goto out;
    }
    const kn_img_decode_params dp = kn_img_decode_default_params();
    int total_bad = 0;
    for (int s = 0; s < KN_SPLIT_COUNT; s++) {
        const kn_ds_item *items = d->items[s];
        for (int base = 0; base < d->count[s]; base += CHUNK) {
            int k = d->count[s] - base < CHUNK ? d->count[s] - base : CHUNK;
#pragma omp parallel for schedule(dynamic, 1)
            for (int t = 0; t < k; t++) {
                kn_img im;
                kn_err_clear(&errs[t]);
                st[t] = kn_img_load(items[base + t].path, &dp, &im, &errs[t]);
                kn_img_deinit(&im);
            }
            for (int t = 0; t < k; t++) {
                const kn_ds_item *it = &items[base + t];
                int cell = s * d->n_classes + it->label;
                n_img[cell]++;
                if (!st[t])
                    continue;
                if (!kn__data_is_file_error(st[t])) {
                    rc = kn_err_set(e, st[t], "%s", errs[t].msg);
                    goto out;
                }
                n_bad[cell]++;
                total_bad++;
                if ((rc = kn_buf_appendf(&list, "unreadable: %s: %s\n", it->path,
                                         kn__data_reason(&errs[t], it->path)))) {
                    kn_err_set(e, rc, "check: report longer than %zu bytes", report->max);
                    goto out;
                }
            }
        }
    }

    rc = kn_buf_appendf(report, "split  class                  images  unreadable\n");
    int all_img = 0;
    for (int s = 0; s < KN_SPLIT_COUNT && !rc; s++) {
        if (d->count[s] == 0)
            continue;
        int split_bad = 0;
        for (int c = 0; c < d->n_classes && !rc; c++) {
            int cell = s * d->n_classes + c;
            split_bad += n_bad[cell];
            rc = row(report, kn_split_name((kn_split)s), d->class_dirs[c], n_img[cell],
                     n_bad[cell]);
        }
        if (!rc)
            rc = row(report, kn_split_name((kn_split)s), "(total)", d->count[s], split_bad);
        all_img += d->count[s];
    }
    if (!rc)
        rc = row(report, "all", "(total)", all_img, total_bad);
    if (!rc && list.len)
        rc = kn_buf_append(report, list.data, list.len);
    if (rc) {
        kn_err_set(e, rc, "check: report longer than %zu bytes", report->max);
        goto out;
    }
    if (bad)
        *bad = total_bad;
out:
    free(errs);
    free(st);
    free(n_bad);
    free(n_img);
    kn_buf_deinit(&list);
    return rc;
}
