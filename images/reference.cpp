#include "images/reference.h"

#include <cctype>

#include "base/error.h"

namespace berth::images {

static constexpr std::string_view kDefaultDomain = "docker.io";
static constexpr std::string_view kOfficialPrefix = "library/";

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool is_sha256_digest(std::string_view text) {
  if (text.size() != 71 || text.substr(0, 7) != "sha256:") return false;
  for (char c : text.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// One path component: lowercase alnum runs joined by '.', '_', '__' or '-'s.
static bool valid_path_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run: ".", "_", "__", or one or more "-".
    size_t j = i;
    while (j < c.size() && !is_lower_alnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" || sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

static bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  if (!(std::isalnum(static_cast<unsigned char>(t[0])) || t[0] == '_')) return false;
  for (char c : t)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

static bool valid_domain(std::string_view d) {
  // host[:port]; host components alnum with inner '-', joined by '.'; or an IPv6 literal in [].
  std::string_view host = d, port;
  if (!d.empty() && d[0] == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    host = d.substr(0, close + 1);
    if (close + 1 < d.size()) {
      if (d[close + 1] != ':') return false;
      port = d.substr(close + 2);
      if (port.empty()) return false;
    }
  } else if (size_t colon = d.find(':'); colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (port.empty()) return false;
  }
  for (char c : port)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  if (host.empty()) return false;
  if (host[0] == '[') return true;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view part = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty() || part.front() == '-' || part.back() == '-') return false;
    for (char c : part)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

static Reference parse(std::string_view text, bool add_default_tag) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) throw Error("invalid reference format: empty image name");
  if (text.size() > 255 + 80) throw Error("invalid reference format: " + quoted + " is too long");
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (!is_sha256_digest(digest))
      throw Error("invalid reference format: " + quoted + ": digest must be sha256: followed by 64 lowercase hex digits");
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!valid_tag(tag)) throw Error("invalid reference format: " + quoted + ": bad tag \"" + std::string(tag) + "\"");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) throw Error("invalid reference format: " + quoted + ": missing repository name");
  // The first component is a domain when it has '.', ':' or is "localhost" (docker's rule).
  std::string_view path = rest;
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
        first == "localhost" || first.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
      if (!valid_domain(first)) throw Error("invalid reference format: " + quoted + ": bad registry host \"" + std::string(first) + "\"");
      ref.domain = std::string(first);
      path = rest.substr(slash + 1);
    }
  }
  if (ref.domain.empty()) ref.domain = std::string(kDefaultDomain);
  if (ref.domain == "index.docker.io") ref.domain = std::string(kDefaultDomain);
  for (char c : path)
    if (c >= 'A' && c <= 'Z')
      throw Error("invalid reference format: repository name " + quoted + " must be lowercase");
  size_t start = 0;
  while (true) {
    size_t next = path.find('/', start);
    std::string_view component = path.substr(start, next == std::string_view::npos ? std::string_view::npos : next - start);
    if (!valid_path_component(component))
      throw Error("invalid reference format: " + quoted + ": bad repository name component \"" + std::string(component) + "\"");
    if (next == std::string_view::npos) break;
    start = next + 1;
  }
  ref.path = std::string(path);
  if (ref.domain == kDefaultDomain && ref.path.find('/') == std::string::npos) ref.path = std::string(kOfficialPrefix) + ref.path;
  if (ref.repository().size() > 255) throw Error("invalid reference format: repository name " + quoted + " is longer than 255 characters");
  if (add_default_tag && ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

Reference parse_reference(std::string_view text) { return parse(text, true); }
Reference parse_reference_no_default(std::string_view text) { return parse(text, false); }

std::string Reference::familiar_repository() const {
  if (domain == kDefaultDomain) {
    if (path.rfind(kOfficialPrefix, 0) == 0 && path.find('/', kOfficialPrefix.size()) == std::string::npos)
      return path.substr(kOfficialPrefix.size());
    return path;
  }
  return repository();
}

std::string Reference::full() const {
  std::string out = repository();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string Reference::familiar() const {
  std::string out = familiar_repository();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string familiar_name(std::string_view full_reference) {
  try {
    return parse_reference_no_default(full_reference).familiar();
  } catch (const Error&) {
    return std::string(full_reference);
  }
}

}  // namespace berth::images
