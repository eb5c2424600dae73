/* Internals of the tune module shared by its files:
 *   space.c    search spaces
 *   tuner.c    strategies
 *   metrics.c  MetricDefinitions over log lines */
#ifndef KN_TUNE_INT_H
#define KN_TUNE_INT_H

#include "kennel/tune.h"

#endif
