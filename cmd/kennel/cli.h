/* Subcommands of the kennel CLI. Each takes (argc, argv) with argv[0] the
 * subcommand name and returns the process exit code. */
#ifndef KN_CLI_H
#define KN_CLI_H

#include <stddef.h>

int kn_cli_predict(int argc, char **argv);
int kn_cli_model(int argc, char **argv);
int kn_cli_dataset(int argc, char **argv);
int kn_cli_train(int argc, char **argv);
int kn_cli_model_server(int argc, char **argv);
int kn_cli_server(int argc, char **argv);
int kn_cli_deploy(int argc, char **argv);
int kn_cli_undeploy(int argc, char **argv);
int kn_cli_endpoints(int argc, char **argv);
int kn_cli_invoke(int argc, char **argv);
int kn_cli_autoscale(int argc, char **argv);
int kn_cli_activities(int argc, char **argv);
int kn_cli_metrics(int argc, char **argv);
int kn_cli_iam(int argc, char **argv);
int kn_cli_function(int argc, char **argv);
int kn_cli_audit(int argc, char **argv);
int kn_cli_iam_suggest(int argc, char **argv);

#include <stdbool.h>
#include <stddef.h>
/* SigV4-signs a request of the client commands (sign.c): writes the
 * headers to add ("Host: ...", "X-Amz-Date: ...", "Authorization: ...") to
 * out (at most 4); *n_out = 0 when no credentials are configured. False
 * after printing why the request cannot be signed. */
bool kn_cli_sign(const char *base_url, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t len, char out[][2200],
                 int *n_out);

int kn_cli_tune(int argc, char **argv);
int kn_cli_logs(int argc, char **argv);
int kn_cli_plot(int argc, char **argv);

/* The kennel server client of deploy.c, for the other client commands.
 * url NULL = $KENNEL_ENDPOINT or http://127.0.0.1:8080. kn_cli_call: one
 * JSON 1.1 call (takes `input`); the answer, or NULL after printing the
 * AWS error. kn_cli_get: a GET's body (malloc'd, NUL-terminated), or NULL
 * after printing the error. */
struct json_t;
struct json_t *kn_cli_call(const char *url, const char *target, struct json_t *input);
char *kn_cli_get(const char *url, const char *path, size_t *len);
/* Any signed request (REST, Query): the HTTP status, or 0 after printing why
 * the server could not be reached. *out: the body (malloc'd, NUL-terminated;
 * free it). want_header (may be NULL): one response header copied to
 * want_value. Safe to call from several threads at once. */
long kn_cli_request(const char *url, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t len, char **out,
                    size_t *out_len, const char *want_header, char *want_value, size_t want_n);

int kn_cli_demo(int argc, char **argv);

#endif
