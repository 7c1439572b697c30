/*-------------------------------------------------------------------------
 *
 * tls.c
 *	  HTTPS for the worker's HTTP server: kvserver.ssl_certificate and
 *	  kvserver.ssl_key, checked on the worker's main thread before civetweb
 *	  starts, so that a bad setting is an ERROR that names the file and the
 *	  cause, never a crash and never plain HTTP in its place.
 *
 * kv_tls_prepare() runs before every start of the HTTP server:
 *
 * 1. The files: readable regular files; the one holding the private key
 *    has no group or world access (PostgreSQL's rule for ssl_key_file).
 *    Relative paths are relative to the data directory.
 * 2. OpenSSL: a scratch SSL_CTX goes through configure_ctx(), the very
 *    function civetweb's init_ssl callback runs later, so whatever civetweb
 *    would refuse (not PEM, a key that does not match the certificate, a
 *    key with a passphrase) is refused here first, with OpenSSL's reason.
 * 3. civetweb's TLS: Debian 12's libcivetweb 1.15 loads OpenSSL 1.1 by
 *    dlopen("libssl.so") and dlopen("libcrypto.so").  load_shims() loads our
 *    two shims (src/tls/), whose SONAMEs are those names, from the
 *    directory of kvserver.so; glibc then hands them to civetweb, and
 *    through them OpenSSL 3 (kvserver_ssl_shim.c says why and how).  Then
 *    mg_init_library(MG_FEATURES_TLS) must report TLS (kv_http_tls_init()).
 *    civetweb cannot try twice in one process (after a failure it counts
 *    itself initialised), so a failure is an ERROR and the worker's restart
 *    starts afresh.
 *
 * kv_tls_init_ssl() is civetweb's init_ssl callback: civetweb calls it on
 * this thread, inside mg_start2(), after its own settings (among them
 * ssl_protocol_version, TLS 1.2 at least); it loads the certificate chain
 * and key, sets TLS 1.2 as the minimum again and the cipher list.  It runs
 * inside civetweb, so it never ereports: a failure is kept for
 * kv_tls_init_ssl_error().
 *
 * IDENTIFICATION
 *	  src/pg/tls.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "miscadmin.h"

#include "http_server.h"
#include "kvserver.h"
#include "tls.h"

/*
 * TLS 1.2 suites: forward secrecy and AEAD only (Mozilla's "intermediate"
 * list).  TLS 1.3 keeps OpenSSL's default suites, which all are.
 */
#define KV_TLS_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Hints for what configure_ctx() refuses. */
#define HINT_CERT	"kvserver.ssl_certificate must name a PEM file with the server's certificate first, then any intermediate certificates."
#define HINT_KEY	"kvserver.ssl_key must name the certificate's PEM private key, without a passphrase; leave it empty when the key is in the certificate file."
#define HINT_MATCH	"kvserver.ssl_key must name the private key of the certificate in kvserver.ssl_certificate."
#define HINT_OPENSSL "This is an error of the OpenSSL library."

/* A file we serve from, as it was when checked (see kv_tls_files_changed). */
typedef struct TlsFile
{
	char		path[MAXPGPATH];
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec mtime;
} TlsFile;

static TlsFile tls_cert;
static TlsFile tls_key;			/* the certificate's file when ssl_key is '' */
static bool passphrase_asked = false;
static char init_ssl_error[512];

/* The shim libraries, in the directory of kvserver.so. */
static const struct
{
	const char *file;
	const char *soname;			/* the name civetweb dlopen()s */
}			tls_shims[] =
{
	{"kvserver_libcrypto" DLSUFFIX, "libcrypto.so"},
	{"kvserver_libssl" DLSUFFIX, "libssl.so"},
};

/* A setting's path: relative ones are relative to the data directory. */
static void
resolve_path(const char *setting, char *out)
{
	if (is_absolute_path(setting))
		strlcpy(out, setting, MAXPGPATH);
	else
		snprintf(out, MAXPGPATH, "%s/%s", DataDir, setting);
	canonicalize_path(out);
}

/* Open, check and remember one file; ERROR if it will not do. */
static void
check_file(TlsFile *f, const char *setting, const char *guc, bool holds_key)
{
	struct stat st;
	int			fd;

	resolve_path(setting, f->path);
	fd = open(f->path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s file \"%s\": %m", guc, f->path),
				 errhint("Set %s to a PEM file that the server's operating-system user can read (a relative path is relative to the data directory), or set kvserver.ssl_certificate to '' for plain HTTP.",
						 guc)));
	if (fstat(fd, &st) != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat %s file \"%s\": %m", guc, f->path)));
	}
	close(fd);

	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s file \"%s\" is not a regular file", guc, f->path),
				 errhint("Set %s to a PEM file.", guc)));

	/* PostgreSQL's own rule for ssl_key_file (be-secure-common.c) */
	if (holds_key)
	{
		if (st.st_uid != geteuid() && st.st_uid != 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("private key file \"%s\" must be owned by the database user or root",
							f->path),
					 errhint("It is named by %s.", guc)));
		if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
			(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("private key file \"%s\" has group or world access",
							f->path),
					 errdetail("File must have permissions u=rw (0600) or less if owned by the database user, or permissions u=rw,g=r (0640) or less if owned by root."),
					 errhint("It is named by %s.", guc)));
	}

	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
}

/* OpenSSL's reason for the first error queued, and an empty queue after. */
static const char *
openssl_error(void)
{
	static char buf[64];
	unsigned long code = ERR_get_error();
	const char *reason;

	ERR_clear_error();
	if (code == 0)
		return "no OpenSSL error was reported";
	reason = ERR_reason_error_string(code);
	if (reason != NULL)
		return reason;
	snprintf(buf, sizeof(buf), "OpenSSL error %lu", code);
	return buf;
}

/*
 * OpenSSL's default asks on the terminal; the server has none.  Refusing
 * makes a key with a passphrase fail at once, and says why.
 */
static int
refuse_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	passphrase_asked = true;
	return 0;
}

/*
 * Set up an SSL_CTX for serving: the certificate chain, the key, TLS 1.2 at
 * least, the cipher list.  Plain C and OpenSSL: civetweb calls it through
 * kv_tls_init_ssl(), where an ereport would jump out of civetweb.  Returns
 * NULL on success, else a hint, with the error in err.
 */
static const char *
configure_ctx(SSL_CTX *ctx, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX_set_default_passwd_cb(ctx, refuse_passphrase);

	if (SSL_CTX_use_certificate_chain_file(ctx, tls_cert.path) != 1)
	{
		snprintf(err, errlen, "could not load the certificate chain from \"%s\": %s",
				 tls_cert.path, openssl_error());
		return HINT_CERT;
	}
	passphrase_asked = false;
	if (SSL_CTX_use_PrivateKey_file(ctx, tls_key.path, SSL_FILETYPE_PEM) != 1)
	{
		unsigned long code = ERR_peek_error();

		if (passphrase_asked)
		{
			ERR_clear_error();
			snprintf(err, errlen, "the private key in \"%s\" is protected by a passphrase",
					 tls_key.path);
			return HINT_KEY;
		}
		/* OpenSSL 3 compares the key with the certificate as it loads it */
		if (ERR_GET_LIB(code) == ERR_LIB_X509 &&
			ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)
		{
			ERR_clear_error();
			snprintf(err, errlen, "the private key in \"%s\" does not match the certificate in \"%s\"",
					 tls_key.path, tls_cert.path);
			return HINT_MATCH;
		}
		snprintf(err, errlen, "could not load the private key from \"%s\": %s",
				 tls_key.path, openssl_error());
		return HINT_KEY;
	}
	/* in case loading did not compare them */
	if (SSL_CTX_check_private_key(ctx) != 1)
	{
		snprintf(err, errlen, "the private key in \"%s\" does not match the certificate in \"%s\": %s",
				 tls_key.path, tls_cert.path, openssl_error());
		return HINT_MATCH;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
	{
		snprintf(err, errlen, "could not make TLS 1.2 the minimum version: %s",
				 openssl_error());
		return HINT_OPENSSL;
	}
	if (SSL_CTX_set_cipher_list(ctx, KV_TLS_CIPHERS) != 1)
	{
		snprintf(err, errlen, "could not set the cipher list: %s",
				 openssl_error());
		return HINT_OPENSSL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
						SSL_OP_CIPHER_SERVER_PREFERENCE |
						SSL_OP_NO_RENEGOTIATION);
	return NULL;
}

/*
 * Load the shims by full path, and check that the names civetweb will
 * dlopen() now find them and nothing else.  Never unloaded.
 */
static void
load_shims(void)
{
	static bool loaded = false;
	int			i;

	if (loaded)
		return;
	for (i = 0; i < lengthof(tls_shims); i++)
	{
		char		path[MAXPGPATH];
		void	   *handle;
		void	   *by_soname;

		snprintf(path, sizeof(path), "%s/%s", pkglib_path, tls_shims[i].file);
		handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (handle == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("kvserver could not load \"%s\": %s", path, dlerror()),
					 errhint("It gives civetweb OpenSSL 3 for HTTPS; make install (or the postgresql-15-kvserver package) puts it next to kvserver.so, and it needs libssl3.")));
		by_soname = dlopen(tls_shims[i].soname, RTLD_LAZY | RTLD_NOLOAD);
		if (by_soname != handle)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("kvserver could not give civetweb OpenSSL 3 through \"%s\"", path),
					 errdetail("dlopen(\"%s\") finds %s.", tls_shims[i].soname,
							   by_soname ? "another library, loaded into this process before" : "nothing"),
					 errhint("Set kvserver.ssl_certificate to '' for plain HTTP.")));
		dlclose(by_soname);
	}
	loaded = true;
}

/*
 * Check the TLS settings and get civetweb ready for HTTPS.  Returns false
 * for plain HTTP (kvserver.ssl_certificate is empty), true when everything
 * is ready, and raises an ERROR otherwise.
 */
bool
kv_tls_prepare(void)
{
	bool		key_apart = kvserver_ssl_key[0] != '\0';
	SSL_CTX    *ctx;
	const char *hint;
	char		err[512];

	if (kvserver_ssl_certificate[0] == '\0')
	{
		if (key_apart)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("kvserver.ssl_key is set but kvserver.ssl_certificate is empty"),
					 errhint("Set kvserver.ssl_certificate to serve HTTPS, or set kvserver.ssl_key to '' for plain HTTP.")));
		return false;
	}

	check_file(&tls_cert, kvserver_ssl_certificate, "kvserver.ssl_certificate",
			   !key_apart);
	if (key_apart)
		check_file(&tls_key, kvserver_ssl_key, "kvserver.ssl_key", true);
	else
		tls_key = tls_cert;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("kvserver could not create an SSL context: %s",
						openssl_error())));
	hint = configure_ctx(ctx, err, sizeof(err));
	SSL_CTX_free(ctx);
	if (hint != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("kvserver cannot serve HTTPS: %s", err),
				 errhint("%s", hint)));

	load_shims();
	if (!kv_http_tls_init(err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("kvserver could not initialise TLS in civetweb: %s", err),
				 errhint("Set kvserver.ssl_certificate to '' for plain HTTP.")));

	init_ssl_error[0] = '\0';
	return true;
}

/* civetweb's init_ssl callback: 1 = set up, -1 = failed (see above). */
int
kv_tls_init_ssl(void *ssl_ctx, void *arg)
{
	return configure_ctx((SSL_CTX *) ssl_ctx, init_ssl_error,
						 sizeof(init_ssl_error)) == NULL ? 1 : -1;
}

/* Why kv_tls_init_ssl() last failed, or NULL. */
const char *
kv_tls_init_ssl_error(void)
{
	return init_ssl_error[0] != '\0' ? init_ssl_error : NULL;
}

/*
 * Whether the files served from were replaced or changed since they were
 * checked: a reload then restarts the HTTP server, which reads them again.
 */
bool
kv_tls_files_changed(void)
{
	const TlsFile *files[2] = {&tls_cert, &tls_key};
	int			i;

	for (i = 0; i < lengthof(files); i++)
	{
		struct stat st;

		if (stat(files[i]->path, &st) != 0 ||
			st.st_dev != files[i]->dev || st.st_ino != files[i]->ino ||
			st.st_size != files[i]->size ||
			st.st_mtim.tv_sec != files[i]->mtime.tv_sec ||
			st.st_mtim.tv_nsec != files[i]->mtime.tv_nsec)
			return true;
	}
	return false;
}
