/* tool_sigv4: drives kennel's SigV4 code from a JSON request on stdin, for
 * tests/auth/test_sigv4.py (which feeds it real client captures and requests
 * signed by botocore).
 *
 * stdin: {"op": "verify" | "sign", "method", "path" (raw), "query" (raw),
 *         "headers": [[name, value], ...], "body_hex", "secret", "now",
 *         "access_key", "region", "service"}             (sign: the last three)
 *         "then_secrets": [...] (verify: again with each, in one process)
 * stdout: {"fail": "ok" | "missing" | ..., "code_query", "code_json",
 *          "http_query", "http_json", "message", "canonical", "string_to_sign",
 *          "access_key", "service", "authorization" (sign), "then_fail"} */
#include "kennel/auth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fail_name(kn_auth_fail f)
{
    static const char *const n[] = {"ok", "missing", "incomplete", "bad_scope", "expired",
                                    "mismatch"};
    return (unsigned)f < sizeof n / sizeof n[0] ? n[f] : "?";
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(void)
{
    json_error_t jerr;
    json_t *in = json_loadf(stdin, 0, &jerr);
    if (!in) {
        fprintf(stderr, "tool_sigv4: stdin: %s\n", jerr.text);
        return 2;
    }
    const char *op = json_string_value(json_object_get(in, "op"));
    json_t *hs = json_object_get(in, "headers");
    size_t nh = json_array_size(hs);
    kn_auth_header *h = calloc(nh + 1, sizeof *h);
    for (size_t i = 0; i < nh; i++) {
        h[i].name = json_string_value(json_array_get(json_array_get(hs, i), 0));
        h[i].value = json_string_value(json_array_get(json_array_get(hs, i), 1));
    }
    const char *bh = json_string_value(json_object_get(in, "body_hex"));
    size_t blen = bh ? strlen(bh) / 2 : 0;
    unsigned char *body = malloc(blen + 1);
    for (size_t i = 0; i < blen; i++)
        body[i] = (unsigned char)(hexv(bh[2 * i]) * 16 + hexv(bh[2 * i + 1]));
    kn_auth_request r = {
        .method = json_string_value(json_object_get(in, "method")),
        .raw_path = json_string_value(json_object_get(in, "path")),
        .raw_query = json_string_value(json_object_get(in, "query")),
        .headers = h,
        .n_headers = nh,
        .body = body,
        .body_len = blen,
    };
    const char *secret = json_string_value(json_object_get(in, "secret"));
    json_t *out = json_object();
    kn_err e = {0};
    if (op && !strcmp(op, "sign")) {
        char authz[2048];
        kn_status rc = kn_auth_sign(&r, json_string_value(json_object_get(in, "access_key")),
                                    secret, json_string_value(json_object_get(in, "region")),
                                    json_string_value(json_object_get(in, "service")), authz,
                                    sizeof authz, &e);
        json_object_set_new(out, "status", json_string(kn_status_name(rc)));
        json_object_set_new(out, "message", json_string(rc ? e.msg : ""));
        if (!rc)
            json_object_set_new(out, "authorization", json_string(authz));
    } else {
        kn_auth_sig s;
        kn_auth_fail f;
        kn_status rc = kn_auth_parse(&r, &s, &f, &e);
        if (!rc) {
            kn_buf c, t;
            kn_buf_init(&c, 1u << 20);
            kn_buf_init(&t, 1u << 16);
            if (kn_auth_canonical(&r, &s, &c, &t, &e) == KN_OK) {
                json_object_set_new(out, "canonical", json_string((char *)c.data));
                json_object_set_new(out, "string_to_sign", json_string((char *)t.data));
            }
            kn_buf_deinit(&c);
            kn_buf_deinit(&t);
            json_object_set_new(out, "access_key", json_string(s.access_key));
            json_object_set_new(out, "service", json_string(s.service));
            json_object_set_new(out, "region", json_string(s.region));
            json_object_set_new(out, "session_token", json_string(s.session_token));
            json_object_set_new(out, "presigned", json_boolean(s.presigned));
            rc = kn_auth_verify(&r, &s, secret ? secret : "",
                                json_number_value(json_object_get(in, "now")), &f, &e);
        }
        /* "then_secrets": the same request verified again in this process
         * with each of these secrets (the derived signing keys are cached) */
        json_t *then = json_object_get(in, "then_secrets");
        if (!kn_auth_parse(&r, &s, &(kn_auth_fail){0}, &(kn_err){0}) && json_is_array(then)) {
            json_t *fails = json_array();
            size_t i;
            json_t *v;
            json_array_foreach(then, i, v) {
                kn_auth_fail tf;
                kn_auth_verify(&r, &s, json_string_value(v) ? json_string_value(v) : "",
                               json_number_value(json_object_get(in, "now")), &tf,
                               &(kn_err){0});
                json_array_append_new(fails, json_string(fail_name(tf)));
            }
            json_object_set_new(out, "then_fail", fails);
        }
        json_object_set_new(out, "fail", json_string(fail_name(f)));
        json_object_set_new(out, "code_query", json_string(kn_auth_fail_code(f, KN_AUTH_PROTO_QUERY)));
        json_object_set_new(out, "code_json", json_string(kn_auth_fail_code(f, KN_AUTH_PROTO_JSON)));
        json_object_set_new(out, "http_query", json_integer(kn_auth_fail_http(f, KN_AUTH_PROTO_QUERY)));
        json_object_set_new(out, "http_json", json_integer(kn_auth_fail_http(f, KN_AUTH_PROTO_JSON)));
        json_object_set_new(out, "message", json_string(rc ? e.msg : ""));
    }
    char *txt = json_dumps(out, JSON_COMPACT);
    puts(txt);
    free(txt);
    json_decref(out);
    json_decref(in);
    free(body);
    free(h);
    return 0;
}
