// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 (a kernel-chosen
// port) for tests that need a misbehaving peer: a registry that serves a
// corrupted blob, a token realm, ... The handler returns the whole raw
// response; respond() builds a simple one.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>

namespace berth::test {

class HttpServer {
 public:
  using Handler = std::function<std::string(const std::string& method, const std::string& path, const std::string& auth)>;
  explicit HttpServer(Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // The raw request (request line and headers) being handled; valid inside the handler.
  static const std::string& current_request();
  // A header of the current request ("" when absent); name as sent, case-insensitive.
  static std::string request_header(const std::string& name);
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void serve();
  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// "HTTP/1.1 <status> X" with extra header lines (each ending in \r\n), the
// body and Connection: close.
std::string respond(int status, const std::string& extra_headers, const std::string& body);

// A handler serving fixed routes: path -> (content type, body); 404 otherwise.
// HEAD gets the headers only.
HttpServer::Handler static_routes(std::map<std::string, std::pair<std::string, std::string>> routes);

}  // namespace berth::test
