/* net_kernel.h — the minimal net_kernel a hidden node needs (ping). */
#ifndef HORDEC_RUNTIME_NET_KERNEL_H
#define HORDEC_RUNTIME_NET_KERNEL_H

#include "hordec/hc_runtime.h"

int hc_net_kernel_start(hc_rt *rt);

#endif
