/* Fuzz target for the Runtime API's request heads (kn_fn_http_parse) and
 * kn_runtime's response heads (kn_runtime_parse_head): any bytes give a
 * verdict without reading past the input, and a parsed head's length never
 * exceeds it. */
#include "kennel/fn.h"
#include "kn_runtime.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    kn_fn_http_req r;
    kn_err e;
    if (kn_fn_http_parse(copy, size, &r, &e) == KN_OK &&
        (r.head_len > size || r.content_length < -1))
        abort();
    kn_runtime_head h;
    if (kn_runtime_parse_head(copy, size, &h) == 1 && h.head_len > size)
        abort();
    free(copy);
    return 0;
}
