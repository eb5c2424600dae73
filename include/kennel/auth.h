/* kennel auth: who is calling and what they may do.
 *
 * AWS Signature Version 4 — parsing, verifying and making signatures of HTTP
 * requests, as the AWS CLI, boto3 and the SDKs send them — and IAM policy
 * documents with their evaluation (second half of this header).
 *
 * A request is given as received: method, the raw path (still
 * percent-encoded, without the query), the raw query string, every header
 * (any letter case; repeated names are joined with ',' as clients sign
 * them) and the body. Two forms are understood:
 *
 *   header     Authorization: AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/
 *              region/service/aws4_request, SignedHeaders=a;b, Signature=hex
 *              with X-Amz-Date (or Date), optional X-Amz-Security-Token and
 *              X-Amz-Content-SHA256; SignedHeaders must include host (as
 *              AWS requires), in both forms;
 *   presigned  X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
 *              X-Amz-SignedHeaders, X-Amz-Signature (and X-Amz-Security-Token)
 *              in the query string.
 *
 * The canonical request follows the SigV4 rules for every service but S3:
 * the path has its "." and ".." segments removed and runs of '/' folded,
 * then is URI-encoded again (so %3A is signed as %253A); query keys and
 * values are percent-decoded ('+' stays a plus) and re-encoded with the
 * unreserved set, and sorted by encoded key, then value; repeated header
 * names join their values with ','; signed header values are trimmed with
 * inner runs of whitespace collapsed (space, \t \n \v \f \r and \x1c-\x1f,
 * as botocore's str.split()); an empty query pair ("a&&b") is signed as
 * "=", as botocore does; and the
 * payload hash is X-Amz-Content-SHA256 when present, else the body's SHA-256.
 * A declared hash must also be the body's (UNSIGNED-PAYLOAD excepted).
 *
 * Failures carry a kind, which each protocol names its own way
 * (kn_auth_fail_code): Query services (IAM, STS) answer SignatureDoesNotMatch,
 * IncompleteSignature, RequestExpired, MissingAuthenticationToken; JSON and
 * REST-JSON services InvalidSignatureException,
 * MissingAuthenticationTokenException and so on. Looking the access key up
 * (UnrecognizedClientException / InvalidClientTokenId) is the caller's.
 *
 * Signatures are compared in constant time. Everything here is reentrant.
 */
#ifndef KENNEL_AUTH_H
#define KENNEL_AUTH_H

#include "kennel/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_auth_header {
    const char *name;
    const char *value;
} kn_auth_header;

typedef struct kn_auth_request {
    const char *method;          /* "POST" */
    const char *raw_path;        /* "/2015-03-31/functions/dog-fn%3Alive/invocations" */
    const char *raw_query;       /* "Qualifier=live" or NULL / "" */
    const kn_auth_header *headers;
    size_t n_headers;
    const void *body;
    size_t body_len;
} kn_auth_request;

typedef enum kn_auth_fail {
    KN_AUTH_OK,
    KN_AUTH_MISSING,    /* no Authorization header and no presigned query */
    KN_AUTH_INCOMPLETE, /* malformed: a part is missing or not well formed */
    KN_AUTH_BAD_SCOPE,  /* scope date is not the request's date */
    KN_AUTH_EXPIRED,    /* more than 15 minutes off, or past X-Amz-Expires */
    KN_AUTH_MISMATCH    /* the signature does not match */
} kn_auth_fail;

typedef enum kn_auth_proto { KN_AUTH_PROTO_QUERY, KN_AUTH_PROTO_JSON } kn_auth_proto;

#define KN_AUTH_MAX_SKEW_S 900
#define KN_AUTH_MAX_SIGNED 64

/* A parsed signature. Strings are copies, NUL-terminated. */
typedef struct kn_auth_sig {
    bool presigned;
    char access_key[129];
    char scope_date[9];   /* YYYYMMDD */
    char region[33];
    char service[65];
    char signed_headers[1024]; /* "content-type;host;x-amz-date" as given */
    char signature[65];   /* 64 lower-case hex digits */
    char amz_date[17];    /* YYYYMMDDTHHMMSSZ */
    double time;          /* amz_date as epoch seconds */
    long expires_s;       /* presigned: X-Amz-Expires; else 0 */
    char session_token[2048]; /* X-Amz-Security-Token, "" when absent */
} kn_auth_sig;

/* Finds and parses the signature of r. KN_OK with *fail = KN_AUTH_OK, or
 * KN_INVALID with *fail saying what kind of failure and e a one-line
 * message naming the part ("Credential: ...", "X-Amz-Date: ..."). */
KN_API kn_status kn_auth_parse(const kn_auth_request *r, kn_auth_sig *s, kn_auth_fail *fail,
                               kn_err *e);

/* Checks s (from kn_auth_parse of r) against the secret: the date window
 * around now (epoch seconds) and the signature. Same result convention. */
KN_API kn_status kn_auth_verify(const kn_auth_request *r, const kn_auth_sig *s,
                                const char *secret, double now, kn_auth_fail *fail, kn_err *e);

/* The canonical request and string to sign of r for s (for diagnostics and
 * tests), appended to b. */
KN_API kn_status kn_auth_canonical(const kn_auth_request *r, const kn_auth_sig *s, kn_buf *canon,
                                   kn_buf *to_sign, kn_err *e);

/* Signs r in the header form: the signed headers are every header of r
 * except those clients never sign (user-agent, expect, ...); r must hold
 * Host and X-Amz-Date. Writes the Authorization value to out. */
KN_API kn_status kn_auth_sign(const kn_auth_request *r, const char *access_key,
                              const char *secret, const char *region, const char *service,
                              char *out, size_t out_size, kn_err *e);

/* The AWS error name of a failure for a protocol family, and its HTTP status. */
KN_API const char *kn_auth_fail_code(kn_auth_fail f, kn_auth_proto p);
KN_API int kn_auth_fail_http(kn_auth_fail f, kn_auth_proto p);

/* ==== IAM policies ==========================================================
 *
 * A policy document is parsed once (kn_policy_parse) into statements and
 * evaluated per request. Grammar: Version ("2012-10-17" or "2008-10-17";
 * policy variables such as ${aws:username} only in the former), optional Id,
 * Statement (an object or a non-empty array). A statement: optional Sid
 * (letters and digits), Effect Allow|Deny, exactly one of Action/NotAction,
 * exactly one of Resource/NotResource (identity policies) — resource and
 * trust policies also need exactly one of Principal/NotPrincipal — and an
 * optional Condition. Every list may be a string or an array of strings.
 *
 * Policy variables (2012-10-17): ${key} is the key's first value (with
 * ${key, 'text'}, text when the key is absent; else nothing matches), ${*}
 * ${?} ${$} the characters themselves; in Resource and the Like/Arn
 * operators what a variable puts in is literal, never a wildcard.
 *
 * Matching: actions "service:Name" case-insensitively with * and ?;
 * resources per ARN segment (arn:partition:service:region:account:resource,
 * the resource part may hold ':' and '/'), case-sensitively, * and ? inside
 * a segment. Conditions: String{Equals,NotEquals,EqualsIgnoreCase,
 * NotEqualsIgnoreCase,Like,NotLike}, Numeric{Equals,NotEquals,LessThan,
 * LessThanEquals,GreaterThan,GreaterThanEquals}, Date{...the same six...}
 * (ISO 8601 or epoch seconds), Bool, BinaryEquals, IpAddress/NotIpAddress
 * (CIDR, IPv4 and IPv6), Arn{Equals,Like,NotEquals,NotLike}, Null; each but
 * Null with an IfExists form; ForAnyValue: / ForAllValues: set qualifiers.
 * Operators and keys AND together, values of one key OR (negated operators:
 * none may match). A missing key fails a condition, except under negated
 * operators, IfExists and ForAllValues, which it passes.
 *
 * Principals: an account id or its root ARN names every principal of the
 * account, a role ARN also its sessions. NotPrincipal leaves a caller out
 * only when it lists every identity the caller is — the account, the role
 * and the session, or the service — as AWS evaluates it.
 *
 * Evaluation over all policies that apply: an explicit Deny wins, else an
 * Allow, else the implicit deny; the decision names the policy and
 * statement that decided. Parsed policies are immutable and may be shared
 * between threads. */

typedef enum kn_policy_kind {
    KN_POLICY_IDENTITY, /* attached to a user or role: no Principal */
    KN_POLICY_RESOURCE  /* trust policy of a role, resource policy: Principal */
} kn_policy_kind;

typedef struct kn_policy kn_policy;

#define KN_POLICY_MAX_BYTES (128u << 10)

/* Parses a policy document. KN_BAD_FORMAT (AWS: MalformedPolicyDocument)
 * with a one-line message naming the statement and element at fault,
 * KN_TOO_LARGE over KN_POLICY_MAX_BYTES. Free with kn_policy_free. */
KN_API kn_status kn_policy_parse(const char *json, size_t len, kn_policy_kind kind,
                                 kn_policy **out, kn_err *e);
KN_API void kn_policy_free(kn_policy *p);
KN_API int kn_policy_statements(const kn_policy *p);

/* A condition key of the request and its values (one for single-valued keys). */
typedef struct kn_policy_key {
    const char *name;           /* "aws:SourceIp"; compared case-insensitively */
    const char *const *values;
    size_t n_values;
} kn_policy_key;

typedef struct kn_policy_request {
    const char *action;         /* "sagemaker:InvokeEndpoint" */
    const char *resource;       /* ARN, or "*" for actions without one */
    const char *principal;      /* caller's ARN ("arn:aws:iam::123456789012:user/alice") */
    const char *principal_service; /* "lambda.amazonaws.com" when a service calls, else NULL */
    const kn_policy_key *keys;  /* condition context */
    size_t n_keys;
} kn_policy_request;

typedef enum kn_policy_effect {
    KN_POLICY_IMPLICIT_DENY,
    KN_POLICY_ALLOW,
    KN_POLICY_EXPLICIT_DENY
} kn_policy_effect;

typedef struct kn_policy_decision {
    kn_policy_effect effect;
    int policy;     /* index in the evaluated set, -1 for the implicit deny */
    int statement;  /* index in that policy's statements, -1 likewise */
    char sid[129];  /* that statement's Sid, "" when it has none */
} kn_policy_decision;

/* Evaluates r against every policy in ps (NULL entries are skipped). */
KN_API void kn_policy_evaluate(const kn_policy *const *ps, size_t n, const kn_policy_request *r,
                               kn_policy_decision *d);

/* The wildcard match used for actions (fold = true) and resource segments:
 * '*' any run, '?' one character. Exposed for tests. */
KN_API bool kn_policy_glob(const char *pattern, const char *text, bool fold);

/* AWS's AccessDenied message for a denied decision:
 * "User: <principal> is not authorized to perform: <action> on resource:
 * <resource> because no identity-based policy allows the <action> action"
 * (or "... with an explicit deny in an identity-based policy"). Control
 * bytes of the request's names, and bytes that are not valid UTF-8, are
 * written as '?'. Parse errors are likewise one line of valid UTF-8. */
KN_API void kn_policy_denied_message(const kn_policy_request *r, const kn_policy_decision *d,
                                     char *out, size_t n);

/* ---- lint --------------------------------------------------------------------
 * Findings about a policy that parses (kennel iam lint): wildcard actions
 * and resources on Allow, Allow with NotAction/NotResource, actions that
 * allow privilege escalation (iam:PassRole, iam:Put*Policy, ...; an error
 * on Resource "*"), unknown actions of known services (a typo grants
 * nothing: an error), services kennel does not know, and Principal "*"
 * without a condition. */
typedef enum kn_lint_level { KN_LINT_ERROR, KN_LINT_WARNING } kn_lint_level;

typedef struct kn_lint_finding {
    kn_lint_level level;
    int statement;     /* index in Statement */
    char sid[129];
    char code[48];     /* "WildcardAction", "PrivilegeEscalation", ... */
    char message[320];
} kn_lint_finding;

/* Parses (errors as kn_policy_parse) and lints; *findings is malloc'ed
 * (free it), possibly NULL with *n = 0. */
KN_API kn_status kn_policy_lint(const char *json, size_t len, kn_policy_kind kind,
                                kn_lint_finding **findings, size_t *n, kn_err *e);
/* True for an action kennel knows ("sagemaker:InvokeEndpoint", any case). */
KN_API bool kn_auth_action_known(const char *action);
/* How many known actions a pattern ("sagemaker:Describe*") matches. */
KN_API int kn_auth_actions_matching(const char *pattern);

#ifdef __cplusplus
}
#endif
#endif
