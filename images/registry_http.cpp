// HTTP for the registry client: libcurl easy handles, the auth challenge
// flow (Basic; Bearer tokens fetched from the realm and cached per scope),
// error mapping, and the docker config.json credential file.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "images/registry.h"
#include "images/registry_internal.h"

namespace berth::images {

namespace {

constexpr size_t kReceiveBufferBytes = 64u << 10;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};
void curl_init_once() { static CurlGlobal g; }

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

// ---- small helpers --------------------------------------------------------

Platform parse_platform(const std::string& text) {
  Platform p;
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = text.find('/', start);
    parts.push_back(text.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty() || (parts.size() == 3 && parts[2].empty()))
    throw UsageError("invalid platform \"" + text + "\": want os/arch[/variant], e.g. linux/amd64");
  p.os = lower(parts[0]);
  p.architecture = lower(parts[1]);
  if (p.architecture == "x86_64" || p.architecture == "x86-64") p.architecture = "amd64";
  if (p.architecture == "aarch64") p.architecture = "arm64";
  if (parts.size() == 3) p.variant = lower(parts[2]);
  return p;
}

std::vector<std::string> split_registry_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

bool is_insecure_registry(const std::string& registry, const std::vector<std::string>& listed) {
  for (auto& l : listed)
    if (l == registry) return true;
  std::string host = registry;
  if (!host.empty() && host[0] == '[') {
    host = host.substr(1, host.find(']') == std::string::npos ? std::string::npos : host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  for (auto& l : listed)
    if (l == host) return true;
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1) return false;
  uint32_t ip = ntohl(a.s_addr);
  if ((ip >> 24) == 127) return true;
  for (auto& l : listed) {
    size_t slash = l.find('/');
    if (slash == std::string::npos) continue;
    in_addr net{};
    int bits = std::atoi(l.c_str() + slash + 1);
    if (::inet_pton(AF_INET, l.substr(0, slash).c_str(), &net) != 1 || bits < 0 || bits > 32) continue;
    uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    if ((ip & mask) == (ntohl(net.s_addr) & mask)) return true;
  }
  return false;
}

std::vector<AuthChallenge> parse_www_authenticate(const std::string& header) {
  // challenge = scheme [ param *( "," param ) ], params are k=v or k="v"; a
  // new scheme starts at a token not followed by '='.
  std::vector<AuthChallenge> out;
  size_t i = 0, n = header.size();
  auto skip_space = [&] {
    while (i < n && (header[i] == ' ' || header[i] == '\t' || header[i] == ',')) ++i;
  };
  while (true) {
    skip_space();
    if (i >= n) break;
    size_t start = i;
    while (i < n && header[i] != ' ' && header[i] != '=' && header[i] != ',') ++i;
    std::string token = header.substr(start, i - start);
    size_t j = i;
    while (j < n && header[j] == ' ') ++j;
    if (j < n && header[j] == '=' && !out.empty()) {
      i = j + 1;
      while (i < n && header[i] == ' ') ++i;
      std::string value;
      if (i < n && header[i] == '"') {
        ++i;
        while (i < n && header[i] != '"') {
          if (header[i] == '\\' && i + 1 < n) ++i;
          value += header[i++];
        }
        ++i;
      } else {
        while (i < n && header[i] != ',' && header[i] != ' ') value += header[i++];
      }
      out.back().params[lower(token)] = value;
    } else {
      out.push_back(AuthChallenge{lower(token), {}});
    }
  }
  return out;
}

std::string base64_encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(data.data()),
                            static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string base64_decode(const std::string& text) {
  std::string in = trim(text);
  if (in.size() % 4) throw Error("invalid base64 text");
  std::string out(in.size() / 4 * 3 + 1, '\0');
  int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
  if (len < 0) throw Error("invalid base64 text");
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(len) - pad);
  return out;
}

std::string auth_key(const std::string& registry) {
  if (registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io")
    return "https://index.docker.io/v1/";
  return registry;
}

// ---- config.json ----------------------------------------------------------

AuthFile::AuthFile(std::string path) : path_(std::move(path)) {}

static nlohmann::json read_config(const std::string& path) {
  std::string text;
  if (!read_file_if_exists(path, text) || trim(text).empty()) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_object()) throw Error(path + ": not a JSON object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": malformed JSON: " + e.what());
  }
}

Credentials AuthFile::get(const std::string& registry) const {
  nlohmann::json j = read_config(path_);
  if (!j.contains("auths") || !j["auths"].is_object()) return {};
  auto& auths = j["auths"];
  for (const std::string& key : {auth_key(registry), registry, "https://" + registry, "http://" + registry}) {
    if (!auths.contains(key) || !auths[key].is_object()) continue;
    auto& e = auths[key];
    Credentials c;
    if (e.contains("auth") && e["auth"].is_string() && !e["auth"].get<std::string>().empty()) {
      std::string plain = base64_decode(e["auth"].get<std::string>());
      size_t colon = plain.find(':');
      if (colon == std::string::npos) throw Error(path_ + ": the auth entry for " + key + " is not user:password");
      c.username = plain.substr(0, colon);
      c.password = plain.substr(colon + 1);
    } else {
      c.username = e.value("username", "");
      c.password = e.value("password", "");
    }
    return c;
  }
  return {};
}

void AuthFile::set(const std::string& registry, const Credentials& credentials) {
  nlohmann::json j = read_config(path_);
  if (!j.contains("auths") || !j["auths"].is_object()) j["auths"] = nlohmann::json::object();
  j["auths"][auth_key(registry)] = {{"auth", base64_encode(credentials.username + ":" + credentials.password)}};
  make_dirs(path_dirname(path_), 0700);
  write_file_atomic(path_, j.dump(1, '\t') + "\n", 0600);
}

bool AuthFile::erase(const std::string& registry) {
  nlohmann::json j = read_config(path_);
  if (!j.contains("auths") || !j["auths"].is_object() || !j["auths"].contains(auth_key(registry))) return false;
  j["auths"].erase(auth_key(registry));
  write_file_atomic(path_, j.dump(1, '\t') + "\n", 0600);
  return true;
}

// ---- the client -----------------------------------------------------------

namespace detail {

TlsFiles find_tls_files(const std::string& registry, const std::vector<std::string>& certs_dirs) {
  TlsFiles files;
  for (auto& root : certs_dirs) {
    std::string dir = path_join(root, registry);
    std::vector<std::string> names;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
      ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    auto ends = [](const std::string& n, const std::string& suffix) {
      return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    for (auto& n : names) {
      if (ends(n, ".crt")) files.ca_files.push_back(path_join(dir, n));
      if (ends(n, ".cert")) {
        std::string key = n.substr(0, n.size() - 5) + ".key";
        if (std::find(names.begin(), names.end(), key) == names.end())
          throw Error("missing key " + path_join(dir, key) + " for client certificate " + path_join(dir, n));
        files.client.emplace_back(path_join(dir, n), path_join(dir, key));
      }
    }
  }
  return files;
}

RegistryClient::RegistryClient(std::string registry, std::string repository, std::string scope_actions,
                               const RegistryOptions& options)
    : registry_(std::move(registry)), repository_(std::move(repository)), scope_actions_(std::move(scope_actions)) {
  curl_init_once();
  check_not_blocked(registry_, options);
  std::string host = registry_ == "docker.io" ? "registry-1.docker.io" : registry_;
  insecure_ = is_insecure_registry(registry_, options.insecure);
  // An insecure registry is tried over plain http first: it is what a
  // loopback or listed registry usually speaks, and a TLS server answers a
  // plain request at once (nginx and Go answer 400), whereas a plain server
  // may sit silently on a TLS ClientHello until a timeout. The first
  // request carries no credentials, so nothing leaks before the answer
  // decides (see send()).
  base_ = (insecure_ ? "http://" : "https://") + host;
  scheme_known_ = !insecure_;
  tls_ = find_tls_files(registry_, options.certs_dirs);
  resolve_ = options.resolve;
  certs_hint_ = options.certs_dirs.empty() ? "a certs.d directory" : path_join(options.certs_dirs.front(), registry_) + "/ca.crt";
  if (options.credentials) credentials_ = options.credentials(registry_);
}

namespace {

// Adds the certs.d CAs to the store libcurl filled from the system bundle.
CURLcode add_ca_files(CURL*, void* ssl_ctx, void* p) {
  auto* files = static_cast<const std::vector<std::string>*>(p);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  for (auto& path : *files) {
    std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "re"), std::fclose);
    if (!f) return CURLE_SSL_CACERT_BADFILE;
    int added = 0;
    while (X509* cert = PEM_read_X509(f.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);  // a duplicate is harmless
      X509_free(cert);
      ++added;
    }
    ERR_clear_error();
    if (!added) return CURLE_SSL_CACERT_BADFILE;
  }
  return CURLE_OK;
}

struct Transfer {
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  bool streaming = false;
  bool aborted = false;
  bool too_big = false;
  std::exception_ptr failure;  // thrown by the sink
  UniqueFd upload;
  uint64_t upload_left = 0;
  uint64_t uploaded = 0;
};

size_t on_header(char* data, size_t size, size_t count, void* p) {
  auto* t = static_cast<Transfer*>(p);
  std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    t->resp->headers.clear();  // a new response (after 100 Continue or a redirect)
    return size * count;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) t->resp->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* p) {
  auto* t = static_cast<Transfer*>(p);
  size_t n = size * count;
  if (t->req->sink && t->streaming) {
    // An exception must not unwind through libcurl: kept, rethrown after.
    try {
      if (!t->req->sink(data, n)) {
        t->aborted = true;
        return 0;
      }
    } catch (...) {
      t->failure = std::current_exception();
      return 0;
    }
    return n;
  }
  if (t->resp->body.size() + n > t->req->max_body) {
    t->too_big = true;
    return 0;
  }
  t->resp->body.append(data, n);
  return n;
}

size_t on_read(char* buffer, size_t size, size_t count, void* p) {
  auto* t = static_cast<Transfer*>(p);
  size_t want = static_cast<size_t>(std::min<uint64_t>(size * count, t->upload_left));
  if (want == 0) return 0;
  for (;;) {
    ssize_t n = ::read(t->upload.get(), buffer, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return CURL_READFUNC_ABORT;
    t->upload_left -= static_cast<uint64_t>(n);
    t->uploaded += static_cast<uint64_t>(n);
    if (t->req->on_upload && n > 0) {
      try {
        t->req->on_upload(t->uploaded);
      } catch (...) {
        t->failure = std::current_exception();
        return CURL_READFUNC_ABORT;
      }
    }
    return static_cast<size_t>(n);
  }
}

}  // namespace

HttpResponse RegistryClient::perform(const HttpRequest& req, const std::string& authorization) {
  HttpResponse resp;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw Error("cannot initialize libcurl");
  CURL* c = curl.get();
  std::string url = req.url.rfind("http", 0) == 0 ? req.url : base_url() + req.url;
  Transfer t;
  t.req = &req;
  t.resp = &resp;
  curl_slist* headers = nullptr;
  for (auto& h : req.headers) headers = curl_slist_append(headers, h.c_str());
  if (!authorization.empty()) headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
  headers = curl_slist_append(headers, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers, curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "berth");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // Abort a stalled transfer: under 1 byte/s for 60 s.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> resolve_guard(nullptr, curl_slist_free_all);
  if (!resolve_.empty()) {
    curl_slist* pins = nullptr;
    for (auto& r : resolve_) pins = curl_slist_append(pins, r.c_str());
    resolve_guard.reset(pins);
    curl_easy_setopt(c, CURLOPT_RESOLVE, pins);
  }
  char error_text[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_text);
  if (url.rfind("https://", 0) == 0) {
    if (insecure_) {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!tls_.ca_files.empty()) {
      curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, add_ca_files);
      curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &tls_.ca_files);
    }
    if (!tls_.client.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, tls_.client.front().first.c_str());
      curl_easy_setopt(c, CURLOPT_SSLKEY, tls_.client.front().second.c_str());
    }
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  // Blobs are often redirected to storage; the Authorization header is not
  // sent to another host (libcurl's default).
  if (req.method == "GET" || req.method == "HEAD") {
    // Blob bodies arrive in receive calls of this size (libcurl's default
    // is 16 KiB): fewer syscalls, and fewer hand-offs to the unpack thread.
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, static_cast<long>(kReceiveBufferBytes));
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  }
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST" || req.method == "PATCH") {
    if (!req.body_file.empty()) {
      t.upload = UniqueFd(::open(req.body_file.c_str(), O_RDONLY | O_CLOEXEC));
      if (!t.upload) throw_errno("cannot open " + req.body_file);
      struct stat st {};
      ::fstat(t.upload.get(), &st);
      uint64_t length = req.body_length >= 0 ? static_cast<uint64_t>(req.body_length)
                                              : static_cast<uint64_t>(st.st_size) - std::min<uint64_t>(req.body_offset, st.st_size);
      if (req.body_offset && ::lseek(t.upload.get(), static_cast<off_t>(req.body_offset), SEEK_SET) < 0)
        throw_errno("cannot seek in " + req.body_file);
      t.upload_left = length;
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(c, CURLOPT_READDATA, &t);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(length));
      if (req.method != "PUT") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    } else {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      if (req.method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
  }
  // Stream only a successful body (error bodies are kept for the message):
  // the header callback notes the status line, the first body byte decides.
  if (req.sink) {
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t count, void* p) -> size_t {
      auto* t = static_cast<Transfer*>(p);
      if (!t->streaming && t->resp->body.empty()) {
        t->streaming = t->resp->status >= 200 && t->resp->status < 300;
        if (t->streaming && t->req->on_stream) {
          try {
            t->req->on_stream(t->resp->status);
          } catch (...) {
            t->failure = std::current_exception();
            return 0;
          }
        }
      }
      return on_body(data, size, count, p);
    });
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, +[](char* data, size_t size, size_t count, void* p) -> size_t {
      auto* t = static_cast<Transfer*>(p);
      std::string line(data, size * count);
      if (line.rfind("HTTP/", 0) == 0) {
        size_t sp = line.find(' ');
        t->resp->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
        t->resp->body.clear();  // a redirect's or 100 Continue's body is not ours
        t->streaming = false;
      }
      return on_header(data, size, count, p);
    });
  }
  CURLcode rc = curl_easy_perform(c);
  if (t.failure) std::rethrow_exception(t.failure);
  if (t.aborted) throw Error("download from " + registry_ + " aborted");
  if (t.too_big) throw Error(registry_ + ": response to " + req.method + " " + url + " is too large");
  if (rc != CURLE_OK) {
    std::string why = error_text[0] ? error_text : curl_easy_strerror(rc);
    bool tls = rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
               rc == CURLE_SSL_CIPHER || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
               rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_INVALIDCERTSTATUS || rc == CURLE_SSL_ENGINE_INITFAILED;
    if (tls && !insecure_ && url.rfind("https://", 0) == 0)
      throw TransportError("TLS error talking to registry " + registry_ + " (" + req.method + " " + url + "): " + why +
                               "; if it uses a private CA, put that CA in " + certs_hint_ +
                               (rc == CURLE_SSL_CACERT_BADFILE ? "" : ", or list the registry as insecure"),
                           true);
    bool connect = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
    throw TransportError("cannot reach registry " + registry_ + " (" + req.method + " " + url + "): " + why, tls, connect);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  char* effective = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective && resp.headers.count("location") && resp.headers["location"].rfind("http", 0) != 0 &&
      !resp.headers["location"].empty() && resp.headers["location"][0] == '/') {
    // make a relative Location absolute against the request URL
    std::string base(effective);
    size_t scheme = base.find("://");
    size_t path = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    resp.headers["location"] = base.substr(0, path) + resp.headers["location"];
  }
  return resp;
}

std::string RegistryClient::authorization() {
  std::lock_guard<std::mutex> guard(mutex_);
  return auth_header_;
}

bool RegistryClient::authenticate(const HttpResponse& challenge) {
  std::vector<AuthChallenge> challenges = parse_www_authenticate(challenge.header("www-authenticate"));
  std::lock_guard<std::mutex> guard(mutex_);
  for (auto& ch : challenges) {
    if (ch.scheme == "basic") {
      if (credentials_.empty()) return false;
      std::string header = "Basic " + base64_encode(credentials_.username + ":" + credentials_.password);
      if (header == auth_header_) return false;  // these very credentials were refused
      auth_header_ = header;
      return true;
    }
    if (ch.scheme == "bearer") {
      std::string realm = ch.params["realm"];
      if (realm.empty()) throw Error("registry " + registry_ + " asked for a bearer token but named no realm");
      std::string scope = ch.params.count("scope") ? ch.params["scope"] : "repository:" + repository_ + ":" + scope_actions_;
      if (repository_.empty() && !ch.params.count("scope")) scope.clear();
      if (auto it = tokens_.find(scope); it != tokens_.end() && "Bearer " + it->second != auth_header_) {
        auth_header_ = "Bearer " + it->second;
        return true;
      }
      std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
      if (ch.params.count("service")) url += "service=" + url_escape(ch.params["service"]) + "&";
      // Several scopes (a cross-repository mount also needs pull on the
      // source) are space separated in the challenge, repeated parameters
      // in the token request.
      for (size_t start = 0; start < scope.size();) {
        size_t space = scope.find(' ', start);
        std::string one = scope.substr(start, space == std::string::npos ? std::string::npos : space - start);
        if (!one.empty()) url += "scope=" + url_escape(one) + "&";
        if (space == std::string::npos) break;
        start = space + 1;
      }
      if (!credentials_.empty()) url += "account=" + url_escape(credentials_.username);
      HttpRequest req;
      req.url = url;
      std::string basic = credentials_.empty() ? "" : "Basic " + base64_encode(credentials_.username + ":" + credentials_.password);
      HttpResponse r = perform(req, basic);
      if (r.status == 401 || r.status == 403)
        throw Error("unauthorized: the token server " + realm + " refused " +
                    (credentials_.empty() ? std::string("anonymous access") : "the credentials of user \"" + credentials_.username + "\"") +
                    " to " + registry_ + "/" + repository_ + " (HTTP " + std::to_string(r.status) + ")");
      if (r.status != 200) throw Error("token server " + realm + " for " + registry_ + " answered HTTP " + std::to_string(r.status));
      std::string token;
      try {
        nlohmann::json j = nlohmann::json::parse(r.body);
        token = j.value("token", "");
        if (token.empty()) token = j.value("access_token", "");
      } catch (const nlohmann::json::exception&) {
      }
      if (token.empty()) throw Error("token server " + realm + " for " + registry_ + " returned no token");
      tokens_[scope] = token;
      auth_header_ = "Bearer " + token;
      return true;
    }
  }
  return false;
}

HttpResponse RegistryClient::send(const HttpRequest& req) {
  bool idempotent = req.method == "GET" || req.method == "HEAD";
  int attempt = 0;
  bool answered_challenge = false;
  std::string plain_failure;  // why plain http did not do, when an insecure registry moved to https
  // An insecure registry's first answer decides its scheme for the client's
  // life: plain http unless http got no answer, or a 400 that is not the
  // registry's (no Docker-Distribution-API-Version header: a TLS port
  // refusing a plain request).
  auto move_to_https = [&](const std::string& base, const std::string& why) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (base_ == base && !scheme_known_) {
      spdlog::debug("registry {}: plain http failed ({}); trying https without verification", registry_, why);
      base_ = "https://" + base.substr(7);
      scheme_known_ = true;
    }
    plain_failure = why;
  };
  for (;;) {
    HttpResponse r;
    bool probing = false;
    std::string base;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      base = base_;
      probing = !scheme_known_ && req.url.rfind("http", 0) != 0;
    }
    try {
      r = perform(req, authorization());
    } catch (const TransportError& e) {
      if (probing && !e.connect_failure) {
        move_to_https(base, e.what());
        continue;
      }
      if (!plain_failure.empty())
        throw TransportError(std::string(e.what()) + "; and over plain http: " + plain_failure, e.tls_failure, e.connect_failure);
      if (e.tls_failure || e.connect_failure || !idempotent || !req.retry_transport || attempt >= 2) throw;
      spdlog::debug("{}; retrying", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500 << attempt++));
      continue;
    }
    if (probing) {
      if (r.status == 400 && r.header("docker-distribution-api-version").empty()) {
        move_to_https(base, "HTTP 400 from " + base + " (a TLS port?)");
        continue;
      }
      std::lock_guard<std::mutex> guard(mutex_);
      if (base_ == base) scheme_known_ = true;
    }
    if (r.status == 401 && !answered_challenge) {
      answered_challenge = true;
      if (authenticate(r)) continue;
      return r;
    }
    if (idempotent && (r.status == 429 || r.status >= 500) && attempt < 2) {
      long wait_ms = 500L << attempt;
      if (std::string ra = r.header("retry-after"); !ra.empty() && std::isdigit(static_cast<unsigned char>(ra[0])))
        wait_ms = std::min(10000L, std::atol(ra.c_str()) * 1000L);
      ++attempt;
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      continue;
    }
    return r;
  }
}

void RegistryClient::fail(const HttpResponse& r, const std::string& what) const {
  std::string detail;
  try {
    nlohmann::json j = nlohmann::json::parse(r.body);
    if (j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
      auto& e = j["errors"][0];
      detail = e.value("code", "");
      std::string msg = e.value("message", "");
      if (!msg.empty()) detail += (detail.empty() ? "" : ": ") + msg;
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::string where = registry_ + "/" + repository_;
  std::string suffix = detail.empty() ? "" : " (" + detail + ")";
  switch (r.status) {
    case 401:
      if (credentials_.empty())
        throw Error("unauthorized: " + what + ": " + where + " requires authentication; run `berth login " + registry_ + "`" + suffix);
      throw Error("unauthorized: " + what + ": " + registry_ + " refused the credentials of user \"" + credentials_.username +
                  "\" for " + where + " (incorrect username or password?)" + suffix);
    case 403:
      throw Error("denied: " + what + ": access to " + where + " is forbidden" + suffix);
    case 404:
      throw Error("not found: " + what + ": " + where + suffix);
    case 429:
      throw Error("toomanyrequests: " + what + ": " + registry_ + " is rate limiting requests; try again later" + suffix);
    case 400:
      // nginx's answer when ssl_verify_client wants a certificate the client did not send (or it did not verify).
      if (r.body.find("No required SSL certificate was sent") != std::string::npos || r.body.find("SSL certificate error") != std::string::npos) {
        std::string dir = certs_hint_.size() > 7 && certs_hint_.compare(certs_hint_.size() - 7, 7, "/ca.crt") == 0
                              ? certs_hint_.substr(0, certs_hint_.size() - 7)
                              : certs_hint_;
        throw Error("registry " + registry_ + " requires a TLS client certificate, and " +
                    (tls_.client.empty() ? "none was found: put client.cert and client.key in " + dir
                                         : "it refused " + tls_.client.front().first) +
                    " (" + what + ": HTTP 400)");
      }
      throw Error("registry " + registry_ + " answered HTTP 400 " + what + " for " + where + suffix);
    default:
      if (r.status >= 500)
        throw Error("registry " + registry_ + " failed (HTTP " + std::to_string(r.status) + ") " + what + " for " + where + suffix);
      throw Error("registry " + registry_ + " answered HTTP " + std::to_string(r.status) + " " + what + " for " + where + suffix);
  }
}

}  // namespace detail

void check_login(const std::string& registry, const Credentials& credentials, const RegistryOptions& options) {
  RegistryOptions o = options;
  o.credentials = [&](const std::string&) { return credentials; };
  detail::RegistryClient client(registry, "", "pull", o);
  detail::HttpRequest req;
  req.url = "/v2/";
  detail::HttpResponse r = client.send(req);
  if (r.status == 200) return;
  if (r.status == 401) throw Error("login to " + registry + " failed: unauthorized: incorrect username or password for user \"" + credentials.username + "\"");
  client.fail(r, "checking the credentials");
}

}  // namespace berth::images
