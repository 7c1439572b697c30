/*-------------------------------------------------------------------------
 *
 * kvserver_crypto_shim.c
 *	  libcrypto as Debian 12's civetweb looks for it: built into
 *	  kvserver_libcrypto.so, whose SONAME is "libcrypto.so".
 *
 * civetweb dlopen()s "libcrypto.so", a name that exists only where
 * libssl-dev is installed.  The worker loads this library by its full path
 * first (src/pg/tls.c), so that dlopen() returns it by its SONAME, and
 * civetweb's dlsym() finds each function it needs in its dependency, the
 * real libcrypto.so.3: all of them exist in OpenSSL 3 under the names
 * civetweb uses, so nothing is defined here but a marker.  See
 * kvserver_ssl_shim.c for the whole story.
 *
 * IDENTIFICATION
 *	  src/tls/kvserver_crypto_shim.c
 *
 *-------------------------------------------------------------------------
 */
#ifdef PG_MAJORVERSION
#error "kvserver_crypto_shim.c is loaded for civetweb: no PostgreSQL headers"
#endif

/* what this library is, for someone looking at it with nm -D */
extern const char kvserver_crypto_shim[];
const char	kvserver_crypto_shim[] = "kvserver: libcrypto.so for civetweb, over libcrypto.so.3";
