/* Fuzz target for the model server's request parsing (src/serve/body.c):
 * every input goes through all the parsers a request reaches before any
 * image is decoded — as a Content-Type and as an Accept header value, as
 * base64, and as an /invocations JSON body (whose URLs are then checked
 * against the scheme allow list, without fetching).
 *
 * Invariants that abort when broken: a refusal hands nothing out and says
 * why in one clean line (no control characters); base64 never produces more
 * than 3 bytes per 4 characters; a parsed body holds 1..max_images items,
 * each non-empty bytes or a non-empty URL within the length limit. */
#include "serve/serve_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_msg(const kn__serr *e, kn__serr_code rc)
{
    if (e->code != rc || e->msg[0] == '\0')
        abort();
    for (const unsigned char *p = (const unsigned char *)e->msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* header values are C strings: the input up to its first NUL */
    char *hdr = malloc(size + 1);
    if (!hdr)
        abort();
    memcpy(hdr, data, size);
    hdr[size] = 0;
    kn__ctype ct = kn__serve_ctype(hdr);
    if (ct != KN__CT_MISSING && ct != KN__CT_IMAGE && ct != KN__CT_JSON && ct != KN__CT_OTHER)
        abort();
    kn__fmt fmt = kn__serve_accept(hdr);
    if (fmt != KN__FMT_NONE && fmt != KN__FMT_JSON && fmt != KN__FMT_CSV)
        abort();
    free(hdr);

    uint8_t *bytes = NULL;
    size_t n = 0;
    kn__serr e = {0};
    kn__serr_code rc = kn__b64_decode((const char *)data, size, &bytes, &n, &e);
    if (rc) {
        check_msg(&e, rc);
        if (bytes || n)
            abort();
    } else {
        if (!bytes || n > size / 4 * 3 + 2)
            abort();
        free(bytes);
    }

    kn__items it;
    memset(&e, 0, sizeof e);
    rc = kn__serve_parse_json(data, size, MAX_IMAGES, &it, &e);
    if (rc) {
        check_msg(&e, rc);
        if (it.v || it.n)
            abort();
        return 0;
    }
    if (it.n < 1 || it.n > MAX_IMAGES || (!it.list && it.n != 1))
        abort();
    for (int i = 0; i < it.n; i++) {
        const kn__item *x = &it.v[i];
        if (x->kind == KN__ITEM_BYTES) {
            if (!x->data || x->len == 0 || !x->owned || x->url)
                abort();
            volatile uint8_t sink = x->data[0] ^ x->data[x->len - 1];
            (void)sink;
        } else {
            size_t len = x->url ? strlen(x->url) : 0;
            if (x->kind != KN__ITEM_URL || len == 0 || len > KN__URL_MAX || x->data)
                abort();
            kn__serr ue = {0};
            kn__serr_code urc = kn__url_check(x->url, "http,https", &ue);
            if (urc)
                check_msg(&ue, urc);
        }
    }
    kn__items_free(&it);
    return 0;
}
