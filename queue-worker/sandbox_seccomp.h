/* sandbox_seccomp: the seccomp filter every sandboxed step runs under, handed to bwrap
 * (--seccomp) as classic BPF (kernel Documentation/userspace-api/seccomp_filter.rst). */
#ifndef CC_SANDBOX_SECCOMP_H
#define CC_SANDBOX_SECCOMP_H

#include <linux/filter.h>
#include <stddef.h>

#define SECCOMP_FILTER_MAX 128

/* Writes the filter into f (room for SECCOMP_FILTER_MAX instructions) and returns its
 * length; 0 on an architecture it does not know (said in the log): no filter then. */
size_t seccomp_filter_build(struct sock_filter *f);

#endif
