/* kennel server: placeholder until its module lands. */
#include "cli.h"

#include <stdio.h>

int kn_cli_server(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kennel server: not available in this build\n");
    return 2;
}
