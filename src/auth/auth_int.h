/* Internals of the auth module shared by its files:
 *   sigv4.c   request signatures
 *   policy.c  policy documents: parsing and evaluation
 *   lint.c    policy findings and the table of known actions
 * A parsed policy (struct kn_policy) is immutable once kn_policy_parse
 * returns. */
#ifndef KN_AUTH_INT_H
#define KN_AUTH_INT_H

#include "kennel/auth.h"

typedef struct strlist {
    char **v;
    int n;
} strlist;

typedef enum base_op {
    OP_STR_EQ,
    OP_STR_EQ_IC,
    OP_STR_LIKE,
    OP_NUM_EQ,
    OP_NUM_LT,
    OP_NUM_LE,
    OP_NUM_GT,
    OP_NUM_GE,
    OP_DATE_EQ,
    OP_DATE_LT,
    OP_DATE_LE,
    OP_DATE_GT,
    OP_DATE_GE,
    OP_BOOL,
    OP_BINARY,
    OP_IP,
    OP_ARN,
    OP_NULL
} base_op;

enum { SET_NONE, SET_ANY, SET_ALL };

typedef struct cond {
    base_op op;
    bool negate, if_exists;
    int set;
    char *key;
    strlist values;
} cond;

typedef struct stmt {
    char sid[129];
    bool deny;
    bool not_action;
    strlist action;
    bool has_resource, not_resource;
    strlist resource;
    bool has_principal, not_principal, principal_any;
    strlist principal_aws, principal_service;
    cond *conds;
    int nconds;
} stmt;

struct kn_policy {
    kn_policy_kind kind;
    bool vars; /* Version 2012-10-17: ${...} policy variables */
    stmt *s;
    int n;
};

/* Glob over a pattern/text pair of explicit lengths (policy.c). */
bool kn__glob_n(const char *p, const char *pe, const char *t, const char *te, bool fold);

#endif
