/* dlh.c - dl.h compiled once, for libdlh.so, libdlh.a (make lib) and the
   WebAssembly module (make web). The library is built with
   -fvisibility=hidden, so marking the public declarations (DLDEF) with
   default visibility exports exactly the dl_ API and nothing else. */
#if defined(__GNUC__) || defined(__clang__)
#define DLDEF extern __attribute__((visibility("default")))
#endif
#define DL_IMPLEMENTATION
#include "dl.h"
