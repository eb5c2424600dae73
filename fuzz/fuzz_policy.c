/* Fuzz target for IAM policy documents: the input is parsed as an identity
 * policy and as a resource (trust) policy; what parses is evaluated for a few
 * requests with condition keys. Promises checked (abort when broken): a
 * refusal hands out no policy and says why on one printable line of valid
 * UTF-8; a parsed policy has statements; a decision's policy/statement
 * indexes are in range and the implicit deny names none. */
#include "fuzz_common.h"
#include "kennel/auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const vals[] = {"10.0.0.1", "prod", "2026-11-30T00:00:00Z", "5", "true"};
static const kn_policy_key keys[] = {
    {"aws:SourceIp", vals, 1},     {"aws:RequestTag/env", vals + 1, 2},
    {"aws:CurrentTime", vals + 2, 1}, {"n", vals + 3, 1},
    {"aws:SecureTransport", vals + 4, 1}, {"aws:username", vals + 1, 1},
};
static const kn_policy_request reqs[] = {
    {"sagemaker:InvokeEndpoint", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dog-ep",
     "arn:aws:iam::123456789012:user/alice", NULL, keys, 6},
    {"sts:AssumeRole", "*", NULL, "lambda.amazonaws.com", keys, 6},
    {"iam:PassRole", "arn:aws:iam::123456789012:role/r",
     "arn:aws:sts::123456789012:assumed-role/r/s", NULL, NULL, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int kind = 0; kind < 2; kind++) {
        kn_policy *p = (kn_policy *)1;
        kn_err e;
        kn_err_clear(&e);
        if (kn_policy_parse((const char *)data, size, (kn_policy_kind)kind, &p, &e) != KN_OK) {
            if (p)
                abort();
            kn_fuzz_check_msg(e.msg, 0);
            continue;
        }
        int ns = kn_policy_statements(p);
        if (ns < 1)
            abort();
        for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
            kn_policy_decision d;
            const kn_policy *set[1] = {p};
            kn_policy_evaluate(set, 1, &reqs[i], &d);
            if (d.effect == KN_POLICY_IMPLICIT_DENY ? (d.policy != -1 || d.statement != -1)
                                                    : (d.policy != 0 || d.statement < 0 ||
                                                       d.statement >= ns))
                abort();
            char msg[1024];
            kn_policy_denied_message(&reqs[i], &d, msg, sizeof msg);
        }
        kn_policy_free(p);
    }
    return 0;
}
