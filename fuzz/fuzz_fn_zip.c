/* Fuzz target for function zips: kn_fn_zip_extract of arbitrary bytes,
 * first as a dry walk, then into a fresh temp dir <tmp>/x. Afterwards the
 * temp dir must hold nothing but x (nothing escaped), and the tree only
 * regular files and directories; any violation aborts. The tree is then
 * removed. */
#include "kennel/fn.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int walk_bad; /* nftw has no user pointer; single-threaded */

static int inspect(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)p, (void)ftw;
    if (flag == FTW_SL || flag == FTW_SLN || (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)))
        walk_bad = 1;
    return 0;
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t unzipped;
    bool bs;
    kn_err e;
    kn_fn_zip_extract(data, size, NULL, &unzipped, &bs, &e);
    char tmp[] = "/tmp/kn-fuzz-zip-XXXXXX";
    if (!mkdtemp(tmp))
        return 0;
    char dir[64];
    snprintf(dir, sizeof dir, "%s/x", tmp);
    mkdir(dir, 0755);
    kn_fn_zip_extract(data, size, dir, &unzipped, &bs, &e);
    DIR *d = opendir(tmp);
    struct dirent *de;
    int others = 0;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "x"))
            others++;
    if (d)
        closedir(d);
    walk_bad = 0;
    nftw(dir, inspect, 16, FTW_PHYS);
    if (others || walk_bad)
        abort();
    nftw(tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
