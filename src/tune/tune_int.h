/* Internals of the tune module shared by its files:
 *   space.c    search spaces (and the message cleaner below)
 *   tuner.c    strategies
 *   metrics.c  MetricDefinitions over log lines */
#ifndef KN_TUNE_INT_H
#define KN_TUNE_INT_H

#include "kennel/tune.h"

/* Makes an error message one printable line of valid UTF-8 (space.c). */
void kn__tune_clean_msg(char *msg);

#endif
