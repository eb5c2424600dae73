/* kennel model-server: placeholder until its module lands. */
#include "cli.h"

#include <stdio.h>

int kn_cli_model_server(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kennel model-server: not available in this build\n");
    return 2;
}
