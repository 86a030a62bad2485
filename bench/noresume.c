/* LD_PRELOAD shim for wrk (scenario 8): every TLS connection does a full
 * handshake.
 *
 * wrk closes a connection with SSL_shutdown + SSL_clear and reconnects
 * with the same SSL object, which keeps the session: each reconnection
 * then offers it, and a server that resumes (nginx's tickets, rustls's
 * session cache) skips the certificate signature. A sender opening a
 * connection per delivery from a fleet of machines mostly cannot resume,
 * so by default run.sh drops the session here, after the real SSL_clear,
 * the same for both servers. S8_RESUME=1 runs wrk without this shim.
 *
 * Built by run.sh: cc -shared -fPIC -o noresume.so noresume.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

int SSL_clear(SSL *s) {
    static int (*real_clear)(SSL *);
    static int (*set_session)(SSL *, SSL_SESSION *);
    if (real_clear == NULL) {
        real_clear = (int (*)(SSL *)) dlsym(RTLD_NEXT, "SSL_clear");
        set_session = (int (*)(SSL *, SSL_SESSION *)) dlsym(RTLD_NEXT, "SSL_set_session");
    }
    int r = real_clear(s);
    if (set_session != NULL) set_session(s, NULL);
    return r;
}
