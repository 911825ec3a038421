/* Preloaded into Janus by bench/sfu/janus.ts. Janus gathers ICE candidates
 * only on interfaces whose getifaddrs() flags lack IFF_LOOPBACK (src/ice.c),
 * so in a loopback-only network namespace it would offer no candidate at all.
 * This wraps getifaddrs() and clears that flag; the bench's janus.jcfg then
 * restricts gathering to "lo" with ice_enforce_list. Nothing else changes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

int getifaddrs(struct ifaddrs **ifap) {
	static int (*real)(struct ifaddrs **) = NULL;
	if (real == NULL) real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if (real == NULL) return -1;
	int r = real(ifap);
	if (r != 0) return r;
	for (struct ifaddrs *i = *ifap; i != NULL; i = i->ifa_next) i->ifa_flags &= ~(unsigned int)IFF_LOOPBACK;
	return 0;
}
