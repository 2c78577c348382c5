#include "tests/support/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <stdexcept>

namespace berth::test {

HttpServer::HttpServer(Handler handler) : handler_(std::move(handler)) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 || ::listen(fd_, 16) != 0)
    throw std::runtime_error("test http server: cannot listen on 127.0.0.1");
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { serve(); });
}

namespace {
thread_local std::string current;
}

const std::string& HttpServer::current_request() { return current; }

std::string HttpServer::request_header(const std::string& name) {
  std::string want = "\r\n" + name + ":";
  for (auto& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string lower = current;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = lower.find(want);
  if (at == std::string::npos) return "";
  at += want.size();
  size_t end = current.find("\r\n", at);
  std::string v = current.substr(at, end - at);
  while (!v.empty() && v.front() == ' ') v.erase(v.begin());
  return v;
}

HttpServer::~HttpServer() {
  ::shutdown(fd_, SHUT_RDWR);
  ::close(fd_);
  thread_.join();
}

void HttpServer::serve() {
  for (;;) {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    std::string req;
    char buf[4096];
    bool http = true;
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
      // Not HTTP (a TLS ClientHello, ...): answer 400 at once, as real servers do.
      if (!std::isupper(static_cast<unsigned char>(req[0]))) {
        http = false;
        break;
      }
    }
    if (!http) {
      std::string out = respond(400, "", "Client sent a non-HTTP request\n");
      [[maybe_unused]] ssize_t n = ::write(c, out.data(), out.size());
      ::close(c);
      continue;
    }
    std::string method = req.substr(0, req.find(' '));
    size_t p1 = req.find(' ') + 1;
    std::string path = req.substr(p1, req.find(' ', p1) - p1);
    std::string auth;
    if (size_t at = req.find("\r\nAuthorization: "); at != std::string::npos) {
      at += 17;
      auth = req.substr(at, req.find("\r\n", at) - at);
    }
    current = req.substr(0, req.find("\r\n\r\n"));
    std::string out = handler_(method, path, auth);
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(c, out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(c);
  }
}

std::string respond(int status, const std::string& extra_headers, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

HttpServer::Handler static_routes(std::map<std::string, std::pair<std::string, std::string>> routes) {
  return [routes = std::move(routes)](const std::string& method, const std::string& path, const std::string&) {
    auto it = routes.find(path);
    if (it == routes.end()) return respond(404, "Content-Type: application/json\r\n", "{\"errors\":[{\"code\":\"NOT_FOUND\"}]}");
    std::string full = respond(200, "Content-Type: " + it->second.first + "\r\n", it->second.second);
    // HEAD: the same headers (with the body's length), no body.
    return method == "HEAD" ? full.substr(0, full.size() - it->second.second.size()) : full;
  };
}

}  // namespace berth::test
