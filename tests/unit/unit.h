/* unit: the C unit tests' tiny harness. Each test file is one program: CHECK() counts,
 * and unit_summary() prints the "N passed, N failed" line CI looks for and gives the exit
 * status. A failed CHECK prints where and what and carries on. */
#ifndef CC_UNIT_H
#define CC_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (cond) {                                                              \
			unit_passed++;                                                   \
		} else {                                                                 \
			unit_failed++;                                                   \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
		}                                                                        \
	} while (0)

#define CHECK_STR(a, b)                                                                  \
	do {                                                                             \
		const char *unit_a_ = (a), *unit_b_ = (b);                               \
		if (unit_a_ && unit_b_ && strcmp(unit_a_, unit_b_) == 0) {               \
			unit_passed++;                                                   \
		} else {                                                                 \
			unit_failed++;                                                   \
			fprintf(stderr, "FAIL %s:%d: %s == %s\n  got:      \"%s\"\n  expected: \"%s\"\n", \
				__FILE__, __LINE__, #a, #b, unit_a_ ? unit_a_ : "(null)",        \
				unit_b_ ? unit_b_ : "(null)");                           \
		}                                                                        \
	} while (0)

static inline int unit_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
