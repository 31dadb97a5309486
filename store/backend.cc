// store/backend.cc — Status names and open_backend(): the --store value to a Backend.
#include "store/backend.h"

#include "store/memory_backend.h"
#include "store/sqlite_backend.h"

#if __has_include("store/redis_backend.h")
#include "store/redis_backend.h"
#define WEIR_STORE_HAS_REDIS 1
#endif

namespace weir::store {

const char* to_string(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kNotFound:
      return "not_found";
    case Status::kUnavailable:
      return "unavailable";
    case Status::kError:
      return "error";
    case Status::kConflict:
      return "conflict";
  }
  return "unknown";
}

std::unique_ptr<Backend> open_backend(std::string_view spec, std::string* error) {
  if (spec == "memory") return std::make_unique<MemoryBackend>();
  if (spec.starts_with("sqlite:")) return SqliteBackend::open(spec.substr(7), error);
  if (spec.starts_with("redis://")) {
#ifdef WEIR_STORE_HAS_REDIS
    return open_redis_backend(spec, error);
#else
    *error = "redis backend not built";
    return nullptr;
#endif
  }
  *error =
      "unknown store \"" + std::string(spec) + "\" (memory, sqlite:PATH, redis://HOST:PORT[/DB])";
  return nullptr;
}

}  // namespace weir::store
