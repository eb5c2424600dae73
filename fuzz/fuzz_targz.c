/* Fuzz target for model archive extraction: kn_archive_extract of arbitrary
 * bytes into <fresh temp dir>/x with a small size bound. Afterwards the temp
 * dir must hold nothing but x (nothing escaped next to it), and the tree
 * under x only regular files and directories within the size bound; any
 * violation aborts. The tree is then removed. */
#include "kennel/model.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_BYTES (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* nftw passes no user pointer, so the walk's totals go through these; the
 * fuzzer and the replay runner are single-threaded. */
static size_t walk_bytes;
static int walk_bad;

static int inspect(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)p, (void)ftw;
    if (flag == FTW_SL || flag == FTW_SLN || (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)))
        walk_bad = 1;
    if (S_ISREG(st->st_mode))
        walk_bytes += (size_t)st->st_size;
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
    const char *tmp = getenv("TMPDIR");
    struct stat st;
    if (!tmp || !*tmp)
        tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    char root[512], target[600];
    snprintf(root, sizeof root, "%s/kn_fuzz_targz_XXXXXX", tmp);
    if (!mkdtemp(root))
        return 0;
    snprintf(target, sizeof target, "%s/x", root);

    kn_err e;
    kn_err_clear(&e);
    kn_status rc = kn_archive_extract(data, size, target, MAX_BYTES, &e);
    if (rc != KN_OK && e.msg[0] == '\0')
        abort();

    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "x"))
            abort(); /* something was written beside the target */
    if (d)
        closedir(d);
    walk_bytes = 0;
    walk_bad = 0;
    nftw(target, inspect, 16, FTW_PHYS);
    if (walk_bad || walk_bytes > MAX_BYTES)
        abort();

    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
