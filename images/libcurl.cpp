// libcurl, loaded on first use.
//
// Linking libcurl made every berth command (`version`, `ps`, a no-op `up`)
// map it and the ~30 libraries it needs (gnutls, krb5, ldap, ssh2, idn2,
// ...), whose relocations and constructors were most of berth's start-up
// time. Only registry commands (pull, push, login, search) talk http, so
// berth does not link libcurl: this file defines the libcurl entry points
// berth calls (the declarations of <curl/curl.h>, so the compiler checks
// every signature) and forwards each one to the real function, found once
// with dlopen("libcurl.so.4") + dlsym. One more: the CA-files callback of
// registry_http.cpp adds certificates to curl's OpenSSL context through
// SSL_CTX_get_cert_store, a libssl function; it is looked up through
// libcurl's handle (libssl is one of its dependencies), so berth does not
// link libssl either.
//
// A function added to registry_http.cpp needs a forwarder here: the link
// fails (undefined reference) until it has one.

#define CURL_DISABLE_TYPECHECK 1  // the variadic forwarders below take the arguments themselves
#include <curl/curl.h>
#include <dlfcn.h>
#include <openssl/ssl.h>

#include <cstdarg>
#include <mutex>
#include <string>

#include "base/error.h"

namespace {

constexpr const char* kLibcurl = "libcurl.so.4";  // Debian's libcurl4 (the OpenSSL flavour)

struct Libcurl {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  decltype(&::SSL_CTX_get_cert_store) ssl_ctx_get_cert_store = nullptr;
};

template <typename F>
void resolve(void* handle, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(handle, name));
  if (!fn) throw berth::Error(std::string(kLibcurl) + ": no symbol " + name + " (" + dlerror() + ")");
}

// Loads libcurl once (the handle stays open for the process' life); throws
// berth::Error saying what is missing when it cannot.
const Libcurl& lib() {
  static Libcurl l;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen(kLibcurl, RTLD_NOW | RTLD_LOCAL);
    if (!h)
      throw berth::Error(std::string("cannot load ") + kLibcurl + " for registry access (" + dlerror() +
                         "): install Debian's libcurl4");
    Libcurl x;
    resolve(h, "curl_global_init", x.global_init);
    resolve(h, "curl_easy_init", x.easy_init);
    resolve(h, "curl_easy_cleanup", x.easy_cleanup);
    resolve(h, "curl_easy_perform", x.easy_perform);
    resolve(h, "curl_easy_setopt", x.easy_setopt);
    resolve(h, "curl_easy_getinfo", x.easy_getinfo);
    resolve(h, "curl_easy_strerror", x.easy_strerror);
    resolve(h, "curl_slist_append", x.slist_append);
    resolve(h, "curl_slist_free_all", x.slist_free_all);
    resolve(h, "SSL_CTX_get_cert_store", x.ssl_ctx_get_cert_store);
    l = x;
  });
  return l;
}

}  // namespace

extern "C" {

CURLcode curl_global_init(long flags) { return lib().global_init(flags); }
CURL* curl_easy_init(void) { return lib().easy_init(); }
void curl_easy_cleanup(CURL* curl) { lib().easy_cleanup(curl); }
CURLcode curl_easy_perform(CURL* curl) { return lib().easy_perform(curl); }
const char* curl_easy_strerror(CURLcode code) { return lib().easy_strerror(code); }
curl_slist* curl_slist_append(curl_slist* list, const char* s) { return lib().slist_append(list, s); }
void curl_slist_free_all(curl_slist* list) { lib().slist_free_all(list); }

// The option number says the type of the third argument (curl.h numbers
// options by type: CURLOPTTYPE_LONG, _OBJECTPOINT, _FUNCTIONPOINT, _OFF_T,
// _BLOB), so it is read with its own type and passed on as such.
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  const Libcurl& l = lib();
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    long v = va_arg(ap, long);
    rc = l.easy_setopt(curl, option, v);
  } else if (option < CURLOPTTYPE_FUNCTIONPOINT) {
    void* v = va_arg(ap, void*);
    rc = l.easy_setopt(curl, option, v);
  } else if (option < CURLOPTTYPE_OFF_T) {
    using Fn = void (*)(void);
    Fn v = va_arg(ap, Fn);
    rc = l.easy_setopt(curl, option, v);
  } else if (option < CURLOPTTYPE_BLOB) {
    curl_off_t v = va_arg(ap, curl_off_t);
    rc = l.easy_setopt(curl, option, v);
  } else {
    void* v = va_arg(ap, void*);  // struct curl_blob*
    rc = l.easy_setopt(curl, option, v);
  }
  va_end(ap);
  return rc;
}

// Every CURLINFO_* takes a pointer to where the value goes.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  void* out = va_arg(ap, void*);
  va_end(ap);
  return lib().easy_getinfo(curl, info, out);
}

// Called inside curl (CURLOPT_SSL_CTX_FUNCTION), so libcurl is loaded.
X509_STORE* SSL_CTX_get_cert_store(const SSL_CTX* ctx) { return lib().ssl_ctx_get_cert_store(ctx); }

}  // extern "C"
