/*-------------------------------------------------------------------------
 *
 * kvserver_ssl_shim.c
 *	  libssl as Debian 12's civetweb looks for it: built into
 *	  kvserver_libssl.so, whose SONAME is "libssl.so".
 *
 * Debian 12's libcivetweb 1.15 is built for the OpenSSL 1.1 API and loads
 * OpenSSL at run time: dlopen("libssl.so") and dlopen("libcrypto.so"), then
 * dlsym() of every function it uses.  With OpenSSL 3 that fails twice: the
 * unversioned names exist only where libssl-dev is installed, and
 * SSL_get_peer_certificate is no longer a function (OpenSSL 3 calls it
 * SSL_get1_peer_certificate and keeps the old name as a macro).  civetweb
 * then reports TLS as unavailable, yet still opens an HTTPS port, and the
 * first connection calls a NULL function pointer.
 *
 * The worker dlopen()s this library by its full path before it initialises
 * civetweb's TLS (src/pg/tls.c).  glibc's dlopen() matches an object that is
 * already loaded by its SONAME, so civetweb's dlopen("libssl.so") returns
 * this library, and civetweb's dlsym() finds every other function in its
 * dependencies, the real libssl.so.3 and libcrypto.so.3.  So only what
 * OpenSSL 3 lacks is defined here.  kvserver_crypto_shim.c does the same
 * for "libcrypto.so".
 *
 * Runs on civetweb threads (civetweb asks for the peer certificate on every
 * HTTPS connection): plain C and OpenSSL only, which `make boundarycheck`
 * checks on the object file.
 *
 * IDENTIFICATION
 *	  src/tls/kvserver_ssl_shim.c
 *
 *-------------------------------------------------------------------------
 */
#include <openssl/ssl.h>

#ifdef PG_MAJORVERSION
#error "kvserver_ssl_shim.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* a macro in OpenSSL 3's headers; civetweb asks dlsym() for the function */
#undef SSL_get_peer_certificate

extern X509 *SSL_get_peer_certificate(const SSL *ssl);

/*
 * OpenSSL 1.1's SSL_get_peer_certificate already returned the certificate
 * with its reference count raised (civetweb frees it), exactly what
 * SSL_get1_peer_certificate does.
 */
X509 *
SSL_get_peer_certificate(const SSL *ssl)
{
	return SSL_get1_peer_certificate(ssl);
}
