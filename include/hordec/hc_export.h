/* hc_export.h — which symbols libhordec exports.
 *
 * HordeC is compiled with -fvisibility=hidden, so nothing is exported unless it says so. Each public
 * header puts its declarations between HC_BEGIN_DECLS and HC_END_DECLS, which turn default visibility on
 * for them (and give them C linkage in C++): exactly what the public headers declare is exported, with no
 * annotation on each declaration, while the internals of every layer, and the libei linked into the
 * library, stay private. HC_EXPORT marks a single declaration outside such a block. */
#ifndef HORDEC_HC_EXPORT_H
#define HORDEC_HC_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define HC_EXPORT __attribute__((visibility("default")))
#define HC_VISIBILITY_PUSH_DEFAULT_ _Pragma("GCC visibility push(default)")
#define HC_VISIBILITY_POP_ _Pragma("GCC visibility pop")
#else
#define HC_EXPORT
#define HC_VISIBILITY_PUSH_DEFAULT_
#define HC_VISIBILITY_POP_
#endif

/* clang-format off */
#ifdef __cplusplus
#define HC_BEGIN_DECLS extern "C" { HC_VISIBILITY_PUSH_DEFAULT_
#define HC_END_DECLS HC_VISIBILITY_POP_ }
#else
#define HC_BEGIN_DECLS HC_VISIBILITY_PUSH_DEFAULT_
#define HC_END_DECLS HC_VISIBILITY_POP_
#endif
/* clang-format on */

#endif
