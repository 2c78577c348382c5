#include "tests/support/registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace berth::test {

bool have_docker_registry() { return ::access("/usr/bin/docker-registry", X_OK) == 0; }

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// True when something answers HTTP on 127.0.0.1:port at /v2/.
static bool answers(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[16] = {};
      ok = ::read(fd, buf, 5) == 5 && std::string(buf, 5) == "HTTP/";
    }
  }
  ::close(fd);
  return ok;
}

RegistryServer::RegistryServer(const std::string& htpasswd_file) {
  int port = free_port();
  address_ = "127.0.0.1:" + std::to_string(port);
  log_path_ = dir_.path() + "/registry.log";
  std::string config = "version: 0.1\n"
                       "log:\n  level: info\n  accesslog:\n    disabled: false\n"
                       "storage:\n  filesystem:\n    rootdirectory: " + dir_.path() + "/data\n"
                       "  delete:\n    enabled: true\n"
                       "http:\n  addr: " + address_ + "\n";
  if (!htpasswd_file.empty()) config += "auth:\n  htpasswd:\n    realm: berth-test\n    path: " + htpasswd_file + "\n";
  std::string config_path = dir_.write("config.yml", config);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execl("/usr/bin/docker-registry", "docker-registry", "serve", config_path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!answers(port)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("docker-registry exited at startup:\n" + log());
    }
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("docker-registry did not answer on " + address_ + ":\n" + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

RegistryServer::~RegistryServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

std::string RegistryServer::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RegistryServer::blob_gets() const {
  std::istringstream in(log());
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.find("\"GET /v2/") != std::string::npos && line.find("/blobs/sha256:") != std::string::npos) ++n;
  return n;
}

bool have_nginx() { return ::access("/usr/sbin/nginx", X_OK) == 0 && ::access("/usr/bin/openssl", X_OK) == 0; }

static void must(const Result& r, const std::string& what) {
  if (r.exit_code != 0) throw std::runtime_error(what + " failed:\n" + r.out + r.err);
}

TestCertificates::TestCertificates(const std::string& dir, const std::string& name)
    : ca(dir + "/ca.crt"), cert(dir + "/server.crt"), key(dir + "/server.key"), client_cert(dir + "/client.cert"), client_key(dir + "/client.key") {
  std::string ca_key = dir + "/ca.key", csr = dir + "/server.csr", ext = dir + "/server.ext";
  must(run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
            "-subj", "/CN=berth test CA"}),
       "openssl: making the test CA");
  must(run({"/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name}),
       "openssl: making the server key");
  {
    std::ofstream out(ext);
    out << "subjectAltName=DNS:" << name << ",IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
  }
  must(run({"/usr/bin/openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days",
            "2", "-extfile", ext}),
       "openssl: signing the server certificate");
  std::string client_csr = dir + "/client.csr", client_ext = dir + "/client.ext";
  must(run({"/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", client_key, "-out", client_csr, "-subj", "/CN=berth test client"}),
       "openssl: making the client key");
  {
    std::ofstream out(client_ext);
    out << "extendedKeyUsage=clientAuth\n";
  }
  must(run({"/usr/bin/openssl", "x509", "-req", "-in", client_csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", client_cert,
            "-days", "2", "-extfile", client_ext}),
       "openssl: signing the client certificate");
}

TlsProxy::TlsProxy(const std::string& upstream, const std::string& name, const std::string& user, const std::string& password,
                   bool require_client_cert)
    : name_(name), port_(free_port()), certs_(dir_.path(), name) {
  Result h = run({"/usr/bin/htpasswd", "-bn", user, password});  // apr1 (MD5), which nginx checks itself
  must(h, "htpasswd");
  std::string htpasswd = dir_.write("htpasswd", h.out);
  std::string d = dir_.path();
  std::string conf = "user root;\n"
                     "worker_processes 1;\n"
                     "pid " + d + "/nginx.pid;\n"
                     "error_log " + d + "/error.log info;\n"
                     "events { worker_connections 64; }\n"
                     "http {\n"
                     "  access_log " + d + "/access.log;\n"
                     "  client_body_temp_path " + d + "/body;\n"
                     "  proxy_temp_path " + d + "/proxy;\n"
                     "  fastcgi_temp_path " + d + "/fastcgi;\n"
                     "  uwsgi_temp_path " + d + "/uwsgi;\n"
                     "  scgi_temp_path " + d + "/scgi;\n"
                     "  server {\n"
                     "    listen 127.0.0.1:" + std::to_string(port_) + " ssl;\n"
                     "    server_name " + name + ";\n"
                     "    ssl_certificate " + certs_.cert + ";\n"
                     "    ssl_certificate_key " + certs_.key + ";\n" +
                     (require_client_cert ? "    ssl_client_certificate " + certs_.ca + ";\n    ssl_verify_client on;\n" : std::string()) +
                     "    client_max_body_size 0;\n"
                     "    chunked_transfer_encoding on;\n"
                     "    location /v2/ {\n"
                     "      auth_basic \"berth test registry\";\n"
                     "      auth_basic_user_file " + htpasswd + ";\n"
                     "      add_header Docker-Distribution-Api-Version registry/2.0 always;\n"
                     "      proxy_pass http://" + upstream + ";\n"
                     "      proxy_set_header Host $http_host;\n"
                     "      proxy_set_header X-Real-IP $remote_addr;\n"
                     "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                     "      proxy_set_header X-Forwarded-Proto $scheme;\n"
                     "      proxy_read_timeout 900;\n"
                     "    }\n"
                     "  }\n"
                     "}\n";
  std::string conf_path = dir_.write("nginx.conf", conf);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int log = ::open((d + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execl("/usr/sbin/nginx", "nginx", "-p", d.c_str(), "-c", conf_path.c_str(), "-e", (d + "/error.log").c_str(), "-g",
            "daemon off;", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // A plain request to the TLS port gets nginx's 400 at once when it is up.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!answers(port_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(d + "/error.log");
      std::stringstream ss;
      ss << in.rdbuf();
      throw std::runtime_error("nginx exited at startup:\n" + ss.str());
    }
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("nginx did not answer on port " + std::to_string(port_));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TlsProxy::~TlsProxy() {
  if (pid_ > 0) {
    // SIGTERM: nginx's master stops its worker at once and exits.
    ::kill(pid_, SIGTERM);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

std::string TlsProxy::access_log() const {
  std::ifstream in(dir_.path() + "/access.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace berth::test
