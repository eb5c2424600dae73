/* Fuzz target for the safetensors reader: kn_st_parse on arbitrary bytes,
 * then every float tensor converted with kn_st_to_f32 into a bounded buffer
 * and every other tensor's bytes touched, so a view that strays outside the
 * input is caught by ASan. Invariants the parser promises (views inside the
 * input, sizes consistent with shapes, names findable) abort when broken. */
#include "kennel/nn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONVERT 65536 /* elements per tensor converted */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_st_file *f = NULL;
    kn_err e;
    kn_err_clear(&e);
    if (kn_st_parse(data, size, &f, &e) != KN_OK) {
        if (f != NULL || e.msg[0] == '\0')
            abort(); /* a refusal always says why and hands nothing out */
        return 0;
    }
    float *buf = malloc(MAX_CONVERT * sizeof(float));
    if (!buf)
        abort();
    volatile uint8_t sink = 0;
    for (int i = 0; i < kn_st_count(f); i++) {
        const kn_st_tensor *t = kn_st_get(f, i);
        size_t es = kn_dtype_size(t->dtype), numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (size_t)t->dims[d];
        if (es == 0 || t->ndim < 0 || t->ndim > 8 || numel * es != t->nbytes)
            abort();
        if (t->data < data || t->nbytes > size || t->data - data > (ptrdiff_t)(size - t->nbytes))
            abort();
        if (kn_st_find(f, t->name) != t)
            abort();
        if (t->nbytes) {
            sink ^= t->data[0];
            sink ^= t->data[t->nbytes - 1];
        }
        bool is_float = t->dtype == KN_DT_F32 || t->dtype == KN_DT_F16 ||
                        t->dtype == KN_DT_BF16 || t->dtype == KN_DT_F64;
        if (numel <= MAX_CONVERT) {
            kn_status rc = kn_st_to_f32(t, buf, numel, &e);
            if ((rc == KN_OK) != is_float)
                abort();
        }
        if (numel + 1 <= MAX_CONVERT && kn_st_to_f32(t, buf, numel + 1, &e) == KN_OK)
            abort(); /* wrong element count must be refused */
    }
    (void)sink;
    free(buf);
    kn_st_free(f);
    return 0;
}
