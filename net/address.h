// net/address.h — IPv4/IPv6 socket addresses parsed from "HOST:PORT" flags.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::net {

class SocketAddress {
 public:
  SocketAddress() = default;
  // Accepts "1.2.3.4:80", "[::1]:80", "localhost:80", ":80" (any IPv4), "*:80". Returns
  // false with a reason in `error` when the text is not an address.
  static bool parse(std::string_view text, SocketAddress* out, std::string* error);
  static SocketAddress from_sockaddr(const struct sockaddr* sa, socklen_t len);

  const struct sockaddr* sockaddr() const { return reinterpret_cast<const struct sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }
  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  std::string host() const;
  std::string to_string() const;  // "1.2.3.4:80" or "[::1]:80"

 private:
  struct sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace weir::net
