/* Tests for model archives: kn_model_pack + kn_archive_extract round trips,
 * and hostile archives built here with libarchive's writer ("../", absolute
 * paths, links, devices, oversized and over-numerous entries, symlinks
 * planted in the target) that must be refused with a message naming the
 * entry, without anything appearing outside the target directory. */
#include "kennel/model.h"
#include "kn_test.h"

#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Per-run scratch directory: on tmpfs when there is one (the limit tests
 * create ten thousand directories, slow on some disks), else in the cwd. */
static char base[256];

static const char *at(const char *rel)
{
    static char path[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/%s", base, rel);
    return path[slot];
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_tree(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void put_file(const char *p, const void *data, size_t n)
{
    kn_err e;
    if (kn_file_write(p, data, n, &e) != KN_OK)
        fprintf(stderr, "setup: %s\n", e.msg);
}

static bool file_equals(const char *p, const void *data, size_t n)
{
    kn_buf b;
    kn_err e;
    kn_buf_init(&b, n + 1);
    bool ok = kn_file_read(p, &b, &e) == KN_OK && b.len == n && memcmp(b.data, data, n) == 0;
    kn_buf_deinit(&b);
    return ok;
}

/* ---- building archives ---------------------------------------------------- */

typedef struct tent {
    const char *path;
    unsigned int type; /* AE_IF*; 0 = regular */
    size_t size;       /* bytes of content ('a'..'z' pattern, or zeros) */
    const char *link;  /* symlink target, or hard link target when hard */
    bool hard, zeros;
} tent;

typedef struct tar_out {
    uint8_t *data;
    size_t len;
} tar_out;

static tar_out make_tar(const tent *ents, int n, bool gzip)
{
    tar_out t = {NULL, 0};
    size_t cap = 8 << 20;
    uint8_t *buf = malloc(cap), *chunk = calloc(1, 65536);
    struct archive *a = archive_write_new();
    if (gzip)
        archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_memory(a, buf, cap, &t.len) != ARCHIVE_OK)
        fprintf(stderr, "setup: %s\n", archive_error_string(a));
    for (int i = 0; i < n; i++) {
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, ents[i].path);
        unsigned int ft = ents[i].type ? ents[i].type : AE_IFREG;
        archive_entry_set_filetype(en, ft);
        archive_entry_set_perm(en, ft == AE_IFDIR ? 0755 : 0644);
        if (ents[i].link && ents[i].hard)
            archive_entry_set_hardlink(en, ents[i].link);
        else if (ents[i].link)
            archive_entry_set_symlink(en, ents[i].link);
        if (ft == AE_IFCHR)
            archive_entry_set_rdev(en, makedev(1, 3));
        archive_entry_set_size(en, (la_int64_t)ents[i].size);
        if (archive_write_header(a, en) != ARCHIVE_OK)
            fprintf(stderr, "setup: %s: %s\n", ents[i].path, archive_error_string(a));
        for (size_t done = 0; done < ents[i].size;) {
            size_t m = ents[i].size - done < 65536 ? ents[i].size - done : 65536;
            for (size_t j = 0; j < m; j++)
                chunk[j] = ents[i].zeros ? 0 : (uint8_t)('a' + (done + j) % 26);
            archive_write_data(a, chunk, m);
            done += m;
        }
        archive_entry_free(en);
    }
    archive_write_close(a);
    archive_write_free(a);
    free(chunk);
    t.data = buf;
    return t;
}

/* Extracts ents into base/<dir>; returns the status, e holds the message. */
static kn_status extract(const tent *ents, int n, bool gzip, const char *dir, size_t max,
                         kn_err *e)
{
    tar_out t = make_tar(ents, n, gzip);
    kn_err_clear(e);
    kn_status rc = kn_archive_extract(t.data, t.len, at(dir), max, e);
    free(t.data);
    return rc;
}

/* Lists a tar.gz file: names into out (up to max), returns the count. */
static int list_tar(const char *path, char names[][64], int max)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    int n = 0;
    if (archive_read_open_filename(a, path, 16384) == ARCHIVE_OK) {
        struct archive_entry *en;
        while (archive_read_next_header(a, &en) == ARCHIVE_OK) {
            if (n < max) {
                snprintf(names[n], 64, "%s", archive_entry_pathname(en));
                KN_CHECK_INT(archive_entry_filetype(en), AE_IFREG);
                KN_CHECK_INT(archive_entry_perm(en), 0644);
            }
            n++;
        }
    }
    archive_read_free(a);
    return n;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_pack_roundtrip(void)
{
    kn_err e;
    const char *json = "{\"format\": \"kennel-model\", \"version\": 1}";
    size_t wlen = 200000;
    uint8_t *weights = malloc(wlen);
    kn_rng r;
    kn_rng_seed(&r, 7);
    for (size_t i = 0; i < wlen; i++)
        weights[i] = (uint8_t)kn_rng_next(&r);
    mkdir(at("pkg"), 0755);
    put_file(at("pkg/model.safetensors"), weights, wlen);
    put_file(at("pkg/labels.txt"), "cat\ndog\n", 8);
    put_file(at("pkg/a b.txt"), "", 0);
    put_file(at("pkg/model.json"), json, strlen(json));
    mkdir(at("pkg/sub"), 0755);
    put_file(at("pkg/sub/nested.txt"), "x", 1);
    KN_CHECK(symlink("labels.txt", at("pkg/link")) == 0);

    KN_CHECK_STR(kn_status_name(kn_model_pack(at("pkg"), at("pkg.tar.gz"), &e)), "OK");
    char names[8][64];
    KN_CHECK_INT(list_tar(at("pkg.tar.gz"), names, 8), 4);
    KN_CHECK_STR(names[0], "model.json");
    KN_CHECK_STR(names[1], "a b.txt");
    KN_CHECK_STR(names[2], "labels.txt");
    KN_CHECK_STR(names[3], "model.safetensors");

    kn_buf b;
    kn_buf_init(&b, 1 << 24);
    KN_REQUIRE(kn_file_read(at("pkg.tar.gz"), &b, &e) == KN_OK);
    KN_CHECK_STR(kn_status_name(kn_archive_extract(b.data, b.len, at("out/deeper"), 1 << 20, &e)),
                 "OK");
    KN_CHECK(file_equals(at("out/deeper/model.json"), json, strlen(json)));
    KN_CHECK(file_equals(at("out/deeper/model.safetensors"), weights, wlen));
    KN_CHECK(file_equals(at("out/deeper/labels.txt"), "cat\ndog\n", 8));
    KN_CHECK(file_equals(at("out/deeper/a b.txt"), "", 0));
    KN_CHECK(!exists(at("out/deeper/sub")));
    KN_CHECK(!exists(at("out/deeper/link")));

    /* Extracting again over the same files replaces them. */
    KN_CHECK_INT(kn_archive_extract(b.data, b.len, at("out/deeper"), 1 << 20, &e), KN_OK);
    KN_CHECK(file_equals(at("out/deeper/model.safetensors"), weights, wlen));

    /* The same bound one byte too small. */
    size_t total = wlen + 8 + strlen(json);
    KN_CHECK_INT(kn_archive_extract(b.data, b.len, at("out2"), total, &e), KN_OK);
    KN_CHECK_STR(kn_status_name(kn_archive_extract(b.data, b.len, at("out3"), total - 1, &e)),
                 "TOO_LARGE");
    KN_CHECK_CONTAINS(e.msg, "model.safetensors");

    /* Truncated gzip stream. */
    KN_CHECK_STR(kn_status_name(kn_archive_extract(b.data, b.len / 2, at("out4"), 1 << 20, &e)),
                 "BAD_FORMAT");
    KN_CHECK(e.msg[0] != '\0');
    kn_buf_deinit(&b);

    /* An archive written inside the packed directory leaves itself out. */
    KN_CHECK_INT(kn_model_pack(at("pkg"), at("pkg/self.tar.gz"), &e), KN_OK);
    KN_CHECK_INT(list_tar(at("pkg/self.tar.gz"), names, 8), 4);
    for (int i = 0; i < 4; i++)
        KN_CHECK(strcmp(names[i], "self.tar.gz") != 0);

    KN_CHECK_STR(kn_status_name(kn_model_pack(at("nope"), at("nope.tar.gz"), &e)), "NOT_FOUND");
    KN_CHECK_CONTAINS(e.msg, "nope");
    KN_CHECK_STR(kn_status_name(kn_model_pack(at("pkg"), at("no/dir/x.tar.gz"), &e)), "IO");
    KN_CHECK_CONTAINS(e.msg, "x.tar.gz");
    free(weights);
}

static void test_plain_tar(void)
{
    kn_err e;
    const tent ents[] = {
        {"./d/", AE_IFDIR, 0, NULL, false, false},
        {"d//e/./f.txt", 0, 30, NULL, false, false},
        {"./", AE_IFDIR, 0, NULL, false, false},
        {"g.txt", 0, 5, NULL, false, false},
    };
    KN_CHECK_STR(kn_status_name(extract(ents, 4, false, "plain", 100, &e)), "OK");
    KN_CHECK(file_equals(at("plain/d/e/f.txt"), "abcdefghijklmnopqrstuvwxyzabcd", 30));
    KN_CHECK(file_equals(at("plain/g.txt"), "abcde", 5));
    KN_CHECK_STR(kn_status_name(extract(ents, 4, true, "gz", 100, &e)), "OK");
    KN_CHECK(file_equals(at("gz/d/e/f.txt"), "abcdefghijklmnopqrstuvwxyzabcd", 30));
    /* An empty tar is a valid, empty archive. */
    KN_CHECK_STR(kn_status_name(extract(NULL, 0, true, "empty", 100, &e)), "OK");
}

static void test_garbage(void)
{
    kn_err e;
    mkdir(at("g"), 0755);
    KN_CHECK_STR(kn_status_name(kn_archive_extract("", 0, at("g"), 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "empty");
    const char junk[] = "this is not an archive, just some words long enough to be looked at";
    KN_CHECK_STR(kn_status_name(kn_archive_extract(junk, sizeof junk, at("g"), 100, &e)),
                 "BAD_FORMAT");
    KN_CHECK(e.msg[0] != '\0');
    const uint8_t gz_junk[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7};
    KN_CHECK_STR(kn_status_name(kn_archive_extract(gz_junk, sizeof gz_junk, at("g"), 100, &e)),
                 "BAD_FORMAT");
}

static void test_dotdot(void)
{
    kn_err e;
    const char *bad[] = {"../evil", "a/../../evil", "./../evil", "x/y/..", "..//evil"};
    mkdir(at("dd"), 0755);
    for (int i = 0; i < 5; i++) {
        const tent ents[] = {{"ok.txt", 0, 3, NULL, false, false},
                             {bad[i], 0, 4, NULL, false, false}};
        KN_CHECK_STR(kn_status_name(extract(ents, 2, true, "dd/root", 100, &e)), "BAD_FORMAT");
        KN_CHECK_CONTAINS(e.msg, bad[i]);
        KN_CHECK_CONTAINS(e.msg, "\"..\"");
    }
    KN_CHECK(exists(at("dd/root/ok.txt")));
    KN_CHECK(!exists(at("dd/evil")));
    KN_CHECK(!exists(at("evil")));
    KN_CHECK(!exists(at("dd/root/a")));
    const tent dir_up[] = {{"../", AE_IFDIR, 0, NULL, false, false}};
    KN_CHECK_INT(extract(dir_up, 1, true, "dd/root", 100, &e), KN_BAD_FORMAT);
}

static void test_absolute(void)
{
    kn_err e;
    char abs_path[128];
    snprintf(abs_path, sizeof abs_path, "/tmp/kn_archive_abs_%d", (int)getpid());
    const tent ents[] = {{abs_path, 0, 4, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(ents, 1, true, "abs", 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, abs_path);
    KN_CHECK_CONTAINS(e.msg, "absolute path refused");
    KN_CHECK(!exists(abs_path));
    const tent dir[] = {{"/", AE_IFDIR, 0, NULL, false, false}};
    KN_CHECK_INT(extract(dir, 1, true, "abs", 100, &e), KN_BAD_FORMAT);
}

static void test_links_and_devices(void)
{
    kn_err e;
    const tent sym[] = {{"link", AE_IFLNK, 0, "/etc", false, false},
                        {"link/passwd", 0, 4, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(sym, 2, true, "ln", 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "\"link\": symbolic link refused (to \"/etc\")");
    KN_CHECK(!exists(at("ln/link")));

    const tent hard[] = {{"hl", 0, 0, "/etc/passwd", true, false}};
    KN_CHECK_STR(kn_status_name(extract(hard, 1, true, "ln", 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "\"hl\": hard link refused (to \"/etc/passwd\")");
    KN_CHECK(!exists(at("ln/hl")));

    const tent fifo[] = {{"pipe", AE_IFIFO, 0, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(fifo, 1, true, "ln", 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "\"pipe\": fifo refused");
    const tent dev[] = {{"null", AE_IFCHR, 0, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(dev, 1, true, "ln", 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "\"null\": character device refused");
    const tent blk[] = {{"sda", AE_IFBLK, 0, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(blk, 1, true, "ln", 100, &e)), "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "block device refused");
    KN_CHECK(!exists(at("ln/pipe")) && !exists(at("ln/null")) && !exists(at("ln/sda")));
}

/* Symlinks already inside the target must not be followed. */
static void test_planted_symlinks(void)
{
    kn_err e;
    mkdir(at("outside"), 0755);
    put_file(at("outside/target.txt"), "precious", 8);
    mkdir(at("planted"), 0755);
    KN_CHECK(symlink("../outside", at("planted/sub")) == 0);
    KN_CHECK(symlink("../outside/target.txt", at("planted/f")) == 0);

    const tent through_dir[] = {{"sub/x.txt", 0, 4, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(through_dir, 1, true, "planted", 100, &e)),
                 "BAD_FORMAT");
    KN_CHECK_CONTAINS(e.msg, "sub/x.txt");
    KN_CHECK(!exists(at("outside/x.txt")));

    const tent over_link[] = {{"f", 0, 4, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(over_link, 1, true, "planted", 100, &e)), "OK");
    KN_CHECK(file_equals(at("outside/target.txt"), "precious", 8));
    KN_CHECK(file_equals(at("planted/f"), "abcd", 4));

    /* A hard link to a file outside is replaced, not written through. */
    KN_CHECK(link(at("outside/target.txt"), at("planted/h")) == 0);
    const tent over_hard[] = {{"h", 0, 4, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(over_hard, 1, true, "planted", 100, &e)), "OK");
    KN_CHECK(file_equals(at("outside/target.txt"), "precious", 8));

    const tent dir_as_file[] = {{"d/", AE_IFDIR, 0, NULL, false, false},
                                {"d", 0, 4, NULL, false, false}};
    KN_CHECK_INT(extract(dir_as_file, 2, true, "planted", 100, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "\"d\"");
    const tent file_as_dir[] = {{"g", 0, 4, NULL, false, false},
                                {"g/", AE_IFDIR, 0, NULL, false, false}};
    KN_CHECK_INT(extract(file_as_dir, 2, true, "planted", 100, &e), KN_BAD_FORMAT);
    KN_CHECK_CONTAINS(e.msg, "\"g/\"");
}

static void test_size_limits(void)
{
    kn_err e;
    /* A 4 MB run of zeros compresses to a few kilobytes. */
    const tent bomb[] = {{"big.bin", 0, 4 << 20, NULL, false, true}};
    tar_out t = make_tar(bomb, 1, true);
    KN_CHECK(t.len < 16384);
    KN_CHECK_STR(kn_status_name(kn_archive_extract(t.data, t.len, at("sz"), 1 << 20, &e)),
                 "TOO_LARGE");
    KN_CHECK_CONTAINS(e.msg, "big.bin");
    KN_CHECK_CONTAINS(e.msg, "1048576");
    free(t.data);
    KN_CHECK(!exists(at("sz/big.bin")));

    /* Each file fits, together they do not. */
    const tent three[] = {{"a.bin", 0, 400000, NULL, false, false},
                          {"b.bin", 0, 400000, NULL, false, false},
                          {"c.bin", 0, 400000, NULL, false, false}};
    KN_CHECK_STR(kn_status_name(extract(three, 3, true, "sz", 1000000, &e)), "TOO_LARGE");
    KN_CHECK_CONTAINS(e.msg, "c.bin");
    /* Exactly at the limit is fine. */
    KN_CHECK_STR(kn_status_name(extract(three, 2, true, "sz2", 800000, &e)), "OK");
}

static void test_entry_limit(void)
{
    kn_err e;
    int n = 10001;
    tent *ents = calloc((size_t)n, sizeof *ents);
    for (int i = 0; i < n; i++)
        ents[i] = (tent){"d/", AE_IFDIR, 0, NULL, false, false};
    KN_CHECK_STR(kn_status_name(extract(ents, n, true, "many", 100, &e)), "TOO_LARGE");
    KN_CHECK_CONTAINS(e.msg, "more than 10000 entries");
    KN_CHECK_STR(kn_status_name(extract(ents, n - 1, true, "many", 100, &e)), "OK");
    free(ents);

    /* 100 files, each 110 directories deep on its own branch: few entries,
     * but 11,000 directories to create. */
    static char paths[100][256];
    tent deep[100];
    for (int i = 0; i < 100; i++) {
        int o = snprintf(paths[i], sizeof paths[i], "d%d/", i);
        for (int j = 0; j < 109; j++)
            o += snprintf(paths[i] + o, sizeof paths[i] - (size_t)o, "x/");
        snprintf(paths[i] + o, sizeof paths[i] - (size_t)o, "f");
        deep[i] = (tent){paths[i], 0, 1, NULL, false, false};
    }
    KN_CHECK_STR(kn_status_name(extract(deep, 100, true, "deep", 1000, &e)), "TOO_LARGE");
    KN_CHECK_CONTAINS(e.msg, "implied directories");
}

int main(void)
{
    struct stat st;
    bool shm = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0;
    snprintf(base, sizeof base, "%sarchive_test_%d", shm ? "/dev/shm/kn_" : "", (int)getpid());
    rm_tree(base);
    if (mkdir(base, 0755) != 0) {
        perror(base);
        return 1;
    }
    KN_RUN(test_pack_roundtrip);
    KN_RUN(test_plain_tar);
    KN_RUN(test_garbage);
    KN_RUN(test_dotdot);
    KN_RUN(test_absolute);
    KN_RUN(test_links_and_devices);
    KN_RUN(test_planted_symlinks);
    KN_RUN(test_size_limits);
    KN_RUN(test_entry_limit);
    int rc = kn_test_finish();
    if (rc == 0)
        rm_tree(base);
    return rc;
}
