/* Subcommands of the kennel CLI. Each takes (argc, argv) with argv[0] the
 * subcommand name and returns the process exit code. */
#ifndef KN_CLI_H
#define KN_CLI_H

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

#endif
