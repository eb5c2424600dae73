/* kennel command-line entry (subcommands are added as modules land). */
#include <stdio.h>
int main(void)
{
    printf("kennel %s\n", KN_VERSION);
    return 0;
}
