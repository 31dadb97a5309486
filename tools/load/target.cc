// tools/load/target.cc — URL parsing, dialing, source address spreading.
#include "tools/load/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/socket_ops.h"

namespace weir::load {

bool parse_ws_url(std::string_view text, WsUrl* out, std::string* error) {
  constexpr std::string_view kScheme = "ws://";
  if (text.substr(0, 6) == "wss://") {
    *error = "wss:// is not supported (no TLS in the load tool): use ws://";
    return false;
  }
  if (text.substr(0, kScheme.size()) != kScheme) {
    *error = "expected a ws://HOST:PORT/path URL, got '" + std::string(text) + "'";
    return false;
  }
  std::string_view rest = text.substr(kScheme.size());
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  WsUrl url;
  url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (url.target[0] == '?') url.target.insert(0, "/");
  size_t bracket = authority.rfind(']');
  size_t colon = authority.rfind(':');
  bool has_port =
      colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket);
  url.host = std::string(has_port ? authority.substr(0, colon) : authority);
  std::string hostport =
      url.host + ":" + (has_port ? std::string(authority.substr(colon + 1)) : "80");
  if (url.host.empty()) {
    *error = "URL '" + std::string(text) + "' has no host";
    return false;
  }
  if (!net::SocketAddress::parse(hostport, &url.address, error)) {
    *error = "URL '" + std::string(text) + "': " + *error;
    return false;
  }
  url.port = url.address.port();
  if (url.port == 0) {
    *error = "URL '" + std::string(text) + "' has port 0";
    return false;
  }
  *out = std::move(url);
  return true;
}

int dial(const net::SocketAddress& target, const net::SocketAddress* source, std::string* error,
         int receive_buffer) {
  if (source == nullptr && receive_buffer == 0) return net::connect_nonblocking(target, error);
  int fd = ::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (receive_buffer > 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  if (source == nullptr) {
    if (::connect(fd, target.sockaddr(), target.length()) < 0 && errno != EINPROGRESS) {
      *error = "connect " + target.to_string() + ": " + std::strerror(errno);
      ::close(fd);
      return -1;
    }
    return fd;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (::bind(fd, source->sockaddr(), source->length()) < 0) {
    *error = "bind " + source->to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::connect(fd, target.sockaddr(), target.length()) < 0 && errno != EINPROGRESS) {
    *error =
        "connect " + target.to_string() + " from " + source->host() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool is_ipv4_loopback(const net::SocketAddress& address) {
  if (address.family() != AF_INET) return false;
  const auto* sin = reinterpret_cast<const struct sockaddr_in*>(address.sockaddr());
  return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

SourceAddresses::SourceAddresses(const net::SocketAddress& target, bool spread, int start_index)
    : spread_(spread && is_ipv4_loopback(target)), index_(start_index % kLoopbackCount) {}

const net::SocketAddress* SourceAddresses::next() {
  if (!spread_) return nullptr;
  std::string error;
  std::string text = "127.0.0." + std::to_string(1 + index_) + ":0";
  net::SocketAddress::parse(text, &current_, &error);
  index_ = (index_ + 1) % kLoopbackCount;
  return &current_;
}

}  // namespace weir::load
