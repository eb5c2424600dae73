/* The instance types kennel offers for endpoint variants.
 *
 * vCPU and memory are AWS's published sizes. Prices are AWS's published
 * on-demand prices for SageMaker real-time inference in us-east-1, in USD
 * per instance-hour, as recalled when the table was written (not fetched:
 * kennel never goes to the network). They are used to report what a
 * deployment would cost on AWS, never to bill. Constant table: thread-safe.
 */
#include "platform_int.h"

#include <string.h>

static const kn_instance_type instance_types[] = {
    /* name            vCPU  MiB     USD/h (SageMaker hosting, us-east-1, on-demand) */
    {"ml.t2.medium", 2, 4096, 0.056},
    {"ml.t2.large", 2, 8192, 0.111},
    {"ml.m5.large", 2, 8192, 0.115},
    {"ml.m5.xlarge", 4, 16384, 0.230},
    {"ml.m5.2xlarge", 8, 32768, 0.461},
    {"ml.m5.4xlarge", 16, 65536, 0.922},
    {"ml.c5.large", 2, 4096, 0.102},
    {"ml.c5.xlarge", 4, 8192, 0.204},
    {"ml.c5.2xlarge", 8, 16384, 0.408},
};

const kn_instance_type *kn_instance_type_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof instance_types / sizeof instance_types[0]; i++)
        if (strcmp(instance_types[i].name, name) == 0)
            return &instance_types[i];
    return NULL;
}

const kn_instance_type *kn_instance_types(size_t *n)
{
    *n = sizeof instance_types / sizeof instance_types[0];
    return instance_types;
}
