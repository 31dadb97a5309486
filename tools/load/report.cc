// tools/load/report.cc — JSON building, CSV rows, and number formatting for progress lines.
#include "tools/load/report.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace weir::load {

// ---------------------------------------------------------------- JsonWriter

void JsonWriter::separator() {
  if (!first_) out_ += ',';
  first_ = false;
}

void JsonWriter::key(std::string_view key) {
  separator();
  if (!key.empty()) {
    out_ += quote(key);
    out_ += ':';
  }
}

JsonWriter& JsonWriter::begin_object(std::string_view name) {
  key(name);
  out_ += '{';
  first_ = true;
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  out_ += '}';
  first_ = false;
  return *this;
}

JsonWriter& JsonWriter::begin_array(std::string_view name) {
  key(name);
  out_ += '[';
  first_ = true;
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  out_ += ']';
  first_ = false;
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view name, std::string_view value) {
  key(name);
  out_ += quote(value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view name, double value) {
  key(name);
  if (!std::isfinite(value)) {
    out_ += "null";  // JSON has no NaN or infinity
    return *this;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  out_ += buf;
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view name, uint64_t value) {
  key(name);
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view name, int64_t value) {
  key(name);
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view name, bool value) {
  key(name);
  out_ += value ? "true" : "false";
  return *this;
}

std::string JsonWriter::quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// ---------------------------------------------------------------- TimeSeries

void TimeSeries::add_row(double t, std::string_view phase, std::initializer_list<double> values) {
  add_row(t, phase, std::vector<double>(values));
}

void TimeSeries::add_row(double t, std::string_view phase, const std::vector<double>& values) {
  times_.push_back(t);
  phases_.emplace_back(phase);
  std::vector<double> row(values);
  row.resize(columns_.size(), NAN);
  values_.push_back(std::move(row));
}

std::vector<double> TimeSeries::column(std::string_view name, size_t rows) const {
  rows = std::min(rows, times_.size());
  if (name == "t") return std::vector<double>(times_.begin(), times_.begin() + rows);
  std::vector<double> out;
  for (size_t c = 0; c < columns_.size(); ++c) {
    if (columns_[c] != name) continue;
    out.reserve(rows);
    for (size_t r = 0; r < rows; ++r) out.push_back(values_[r][c]);
    break;
  }
  return out;
}

size_t TimeSeries::first_row_of(std::string_view phase) const {
  for (size_t r = 0; r < phases_.size(); ++r)
    if (phases_[r] == phase) return r;
  return phases_.size();
}

std::vector<std::pair<double, double>> TimeSeries::spans(std::string_view phase) const {
  std::vector<std::pair<double, double>> out;
  for (size_t r = 0; r < times_.size(); ++r) {
    if (phases_[r] != phase) continue;
    double start = r == 0 ? 0.0 : times_[r - 1];
    if (!out.empty() && out.back().second == start)
      out.back().second = times_[r];
    else
      out.emplace_back(start, times_[r]);
  }
  return out;
}

std::string TimeSeries::to_csv() const {
  std::string out = "t,phase";
  for (const std::string& c : columns_) out += "," + c;
  out += '\n';
  char buf[64];
  for (size_t r = 0; r < times_.size(); ++r) {
    std::snprintf(buf, sizeof buf, "%.3f", times_[r]);
    out += buf;
    out += ',';
    out += phases_[r];
    for (double v : values_[r]) {
      out += ',';
      if (std::isfinite(v)) {
        std::snprintf(buf, sizeof buf, "%.6g", v);
        out += buf;
      }
    }
    out += '\n';
  }
  return out;
}

// ---------------------------------------------------------------- files and formatting

bool write_text_file(const std::string& path, std::string_view content, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) *error = path + ": write failed";
  return ok;
}

std::string human_count(double value) {
  char buf[32];
  if (!std::isfinite(value)) return "-";
  if (value >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", value / 1e9);
  else if (value >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", value / 1e6);
  else if (value >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", value / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", value);
  return buf;
}

std::string human_ms(uint64_t ns) {
  char buf[32];
  double ms = static_cast<double>(ns) / 1e6;
  if (ms >= 100)
    std::snprintf(buf, sizeof buf, "%.0fms", ms);
  else if (ms >= 10)
    std::snprintf(buf, sizeof buf, "%.1fms", ms);
  else if (ms >= 1)
    std::snprintf(buf, sizeof buf, "%.2fms", ms);
  else
    std::snprintf(buf, sizeof buf, "%.3fms", ms);
  return buf;
}

std::string latency_text(const Histogram& h, double percent) {
  return h.count() ? human_ms(h.percentile(percent)) : "-";
}

}  // namespace weir::load
