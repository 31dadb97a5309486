// tools/load/json_scan.h — just enough JSON reading for the load tool's hot path: the first
// key of an envelope (`{"message":{...}}` -> "message") and a few scalar fields by name
// (`offset`, `seq`, `ts_us`, `content`), found in one pass without building anything.
//
// What the server sends is small, flat and well formed, so this is a scanner, not a parser:
// it walks the text once, skips string contents correctly (escapes included, so a key name
// inside a message's content never matches), and treats any `"name":` at any depth as the
// field. A string field is returned raw (escapes left as they are): the tool only reads back
// strings it wrote itself, which never need escaping. Malformed input yields "not found",
// never a crash or a read past the end.
//
// Thread-safety: pure functions over the caller's bytes.
#pragma once

#include <cstdint>
#include <string_view>

namespace weir::load {

// The name of the first key of the top-level object, or empty when `json` does not start
// (after whitespace) with `{"name":`.
std::string_view json_first_key(std::string_view json);

// The raw value text of the first `"key":` in `json` (a number, literal, or a string without
// its quotes; objects and arrays are not returned). False when the key is absent or its value
// is not a scalar.
bool json_find_scalar(std::string_view json, std::string_view key, std::string_view* value,
                      bool* is_string = nullptr);

// The first `"key":` holding a non-negative integer (a JSON number or a decimal string, as
// protojson writes 64-bit integers). False when absent or not an unsigned integer.
bool json_find_uint(std::string_view json, std::string_view key, uint64_t* out);

// The first `"key":` holding a string, raw (see above). False when absent or not a string.
bool json_find_string(std::string_view json, std::string_view key, std::string_view* out);

// Several keys in one pass: each field's `found`, `value` and `is_string` are set from the first
// `"key":` with a scalar value; the walk stops once every field is found. Returns how many were.
struct JsonField {
  JsonField(std::string_view k = {}) : key(k) {}  // NOLINT(google-explicit-constructor)
  std::string_view key;
  std::string_view value;
  bool found = false;
  bool is_string = false;
};
size_t json_find_fields(std::string_view json, JsonField* fields, size_t count);

// The fast scan alone, from byte `from` on: true when every field was found there as a key
// with a scalar value (then they are filled in as above); false says nothing about the rest.
// The rooms envelope reader uses it to read `offset` and `epoch` from a message's last bytes.
bool json_find_fields_after(std::string_view json, size_t from, JsonField* fields, size_t count);

// A found field's value as an unsigned integer (see json_find_uint).
bool json_field_uint(const JsonField& field, uint64_t* out);

}  // namespace weir::load
