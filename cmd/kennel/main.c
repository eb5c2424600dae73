/* The kennel command: dispatches subcommands through one table. Uses public
 * headers only. Exit codes: 0 success, 1 a failure while working (e.g. an
 * image that could not be read), 2 bad usage. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: kennel version\nPrints kennel's version (also kennel --version).\n");
        return 0;
    }
    printf("kennel %s\n", KN_VERSION);
    return 0;
}

static int cmd_help(int argc, char **argv);

static const struct command {
    const char *name, *args, *help;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"predict", "--model PATH [options] IMAGE...", "classify images with a model",
     kn_cli_predict},
    {"model", "inspect|package ...", "inspect a model; build a package from weights",
     kn_cli_model},
    {"dataset", "check|synth DIR", "check an ImageFolder data set; write a synthetic one",
     kn_cli_dataset},
    {"train", "--data DIR [options]", "train a classifier (transfer learning)", kn_cli_train},
    {"model-server", "--model PATH [--port N]",
     "serve one model (SageMaker inference container contract)", kn_cli_model_server},
    {"server", "[--data-dir DIR] [--listen ADDR]", "run the kennel daemon", kn_cli_server},
    {"deploy", "--model PATH --name NAME [--wait]", "deploy a model to an endpoint",
     kn_cli_deploy},
    {"undeploy", "NAME", "delete an endpoint made by deploy", kn_cli_undeploy},
    {"endpoints", "[--json]", "list endpoints and their instances", kn_cli_endpoints},
    {"invoke", "ENDPOINT FILE|URL", "classify an image with an endpoint", kn_cli_invoke},
    {"autoscale", "ENDPOINT --min N --max N --target N", "autoscale an endpoint variant",
     kn_cli_autoscale},
    {"activities", "ENDPOINT", "an endpoint's scaling activities", kn_cli_activities},
    {"metrics", "ENDPOINT [--minutes N]", "an endpoint's per-minute metrics", kn_cli_metrics},
    {"iam", "lint|simulate|suggest ...", "check IAM policies; least privilege from the audit log",
     kn_cli_iam},
    {"tune", "--config F | results|best|plot|stop JOB",
     "hyperparameter tuning jobs: run one, its results, its best job", kn_cli_tune},
    {"logs", "TRAINING-JOB", "a training job's log", kn_cli_logs},
    {"plot", "metrics TRAINING-JOB --out F.png", "a training job's metric curves",
     kn_cli_plot},
    {"audit", "[--since T] [--principal P]", "the daemon's audit log of API calls",
     kn_cli_audit},
    {"function", "create|invoke|logs|concurrency|provisioned|package ...",
     "Lambda-style functions on a kennel server", kn_cli_function},
    {"demo", "[--data DIR] [--download] [--keep DIR]",
     "the reference project's whole workflow against a temporary server", kn_cli_demo},
    {"version", "", "print the version", cmd_version},
    {"help", "[COMMAND]", "show help", cmd_help},
};

static int cmd_help(int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (strcmp(argv[1], commands[i].name) == 0) {
                char *sub[] = {argv[1], "--help", NULL};
                return commands[i].run(2, sub);
            }
    }
    printf("usage: kennel COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-12s %-36s %s\n", commands[i].name, commands[i].args, commands[i].help);
    printf("\n'kennel COMMAND --help' explains a command.\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cmd_help(1, argv);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(1, argv);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(1, argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kennel: unknown command '%s' (try 'kennel help')\n", argv[1]);
    return 2;
}
