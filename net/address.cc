// net/address.cc — parsing and printing socket addresses.
#include "net/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace weir::net {

bool SocketAddress::parse(std::string_view text, SocketAddress* out, std::string* error) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    *error = "expected HOST:PORT, got '" + std::string(text) + "'";
    return false;
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    *error = "invalid port '" + std::string(port_text) + "'";
    return false;
  }
  SocketAddress addr;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    std::string h(host.substr(1, host.size() - 2));
    auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(&addr.storage_);
    if (::inet_pton(AF_INET6, h.c_str(), &sin6->sin6_addr) != 1) {
      *error = "invalid IPv6 address '" + h + "'";
      return false;
    }
    sin6->sin6_family = AF_INET6;
    addr.length_ = sizeof(struct sockaddr_in6);
  } else {
    std::string h(host);
    if (h.empty() || h == "*") h = "0.0.0.0";
    if (h == "localhost") h = "127.0.0.1";
    auto* sin = reinterpret_cast<struct sockaddr_in*>(&addr.storage_);
    if (::inet_pton(AF_INET, h.c_str(), &sin->sin_addr) != 1) {
      *error = "invalid IPv4 address '" + h + "' (use [v6] for IPv6)";
      return false;
    }
    sin->sin_family = AF_INET;
    addr.length_ = sizeof(struct sockaddr_in);
  }
  addr.set_port(static_cast<uint16_t>(port));
  *out = addr;
  return true;
}

SocketAddress SocketAddress::from_sockaddr(const struct sockaddr* sa, socklen_t len) {
  SocketAddress addr;
  if (len > sizeof addr.storage_) len = sizeof addr.storage_;
  std::memcpy(&addr.storage_, sa, len);
  addr.length_ = len;
  return addr;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (family() == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
  else if (family() == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
  return buf;
}

std::string SocketAddress::to_string() const {
  if (family() == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
  return host() + ":" + std::to_string(port());
}

}  // namespace weir::net
