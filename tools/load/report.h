// tools/load/report.h — what a run tells its user: a live progress line each second (stderr),
// per-second rows (`--csv FILE`), and a JSON summary at the end (stdout).
//
// TimeSeries holds the per-second rows every subcommand collects; the CSV and the SVG plot are
// both drawn from it. Each row covers the interval since the previous row and carries the
// phase it belonged to ("connect", "warmup", "measure", "drain"), so phases can be shaded.
//
// Thread-safety: none; these live on the main thread, which samples the reactor threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/load/histogram.h"

namespace weir::load {

// Builds one JSON document. Commas and quoting are handled; nesting is the caller's to balance.
class JsonWriter {
 public:
  JsonWriter& begin_object(std::string_view key = {});
  JsonWriter& end_object();
  // An array's elements are written with an empty key (field({}, v), begin_object()).
  JsonWriter& begin_array(std::string_view key = {});
  JsonWriter& end_array();
  JsonWriter& field(std::string_view key, std::string_view value);
  JsonWriter& field(std::string_view key, const char* value) {
    return field(key, std::string_view(value));
  }
  JsonWriter& field(std::string_view key, double value);
  JsonWriter& field(std::string_view key, uint64_t value);
  JsonWriter& field(std::string_view key, int64_t value);
  JsonWriter& field(std::string_view key, int value) {
    return field(key, static_cast<int64_t>(value));
  }
  JsonWriter& field(std::string_view key, bool value);
  const std::string& str() const { return out_; }

  // `text` as a JSON string literal, quotes included.
  static std::string quote(std::string_view text);

 private:
  void separator();
  void key(std::string_view key);

  std::string out_;
  bool first_ = true;
};

class TimeSeries {
 public:
  explicit TimeSeries(std::vector<std::string> columns) : columns_(std::move(columns)) {}

  // One interval ending `t` seconds after the run's start. `values` follow the columns.
  void add_row(double t, std::string_view phase, std::initializer_list<double> values);
  void add_row(double t, std::string_view phase, const std::vector<double>& values);

  size_t rows() const { return times_.size(); }
  const std::vector<std::string>& columns() const { return columns_; }
  double time(size_t row) const { return times_[row]; }
  const std::string& phase(size_t row) const { return phases_[row]; }
  // The values of one column ("t" for the times) in the first `rows` rows, or empty when
  // there is no such column.
  std::vector<double> column(std::string_view name, size_t rows = SIZE_MAX) const;
  // Index of the first row in `phase`, or rows() when there is none.
  size_t first_row_of(std::string_view phase) const;
  const std::vector<double>& times() const { return times_; }
  // [start, end] time spans of consecutive rows in `phase` (a row spans from the previous
  // row's time, or 0, to its own).
  std::vector<std::pair<double, double>> spans(std::string_view phase) const;

  // "t,phase,<columns>" then one line per row; NaN cells are left empty.
  std::string to_csv() const;

 private:
  std::vector<std::string> columns_;
  std::vector<double> times_;
  std::vector<std::string> phases_;
  std::vector<std::vector<double>> values_;  // [row][column]
};

// Writes `content` to `path` (replacing it). False with a reason on failure.
bool write_text_file(const std::string& path, std::string_view content, std::string* error);

// "123456" -> "123.5k", for progress lines.
std::string human_count(double value);
// Nanoseconds as milliseconds with 3 significant digits ("0.412ms", "12.3ms").
std::string human_ms(uint64_t ns);
// A percentile of a nanosecond histogram for a progress line; "-" when it is empty.
std::string latency_text(const Histogram& h, double percent);

}  // namespace weir::load
