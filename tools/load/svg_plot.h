// tools/load/svg_plot.h — `--plot FILE.svg`: per-second rates over time as a line chart a person
// opens in a browser, in the spirit of the seed's graphs: one or more stacked panels sharing
// the time axis, one line per client or per metric, and shaded periods the caller flags
// (warm-up, drain, "backpressure held the server back").
//
// Plain SVG 1.1 with inline attributes (no CSS, no script), so it renders anywhere and parses
// as well-formed XML.
//
// Thread-safety: pure functions over the caller's values.
#pragma once

#include <string>
#include <vector>

namespace weir::load {

struct PlotSeries {
  std::string name;
  std::vector<double> x;  // seconds
  std::vector<double> y;  // non-finite values leave a gap in the line
};

struct PlotPanel {
  std::string y_label;  // e.g. "messages/s"
  std::vector<PlotSeries> series;
};

// A shaded span of time over every panel; spans with the same label share a colour and one
// legend entry.
struct PlotRegion {
  double x0 = 0;
  double x1 = 0;
  std::string label;
};

struct PlotSpec {
  std::string title;
  std::string x_label = "seconds";
  std::vector<PlotPanel> panels;
  std::vector<PlotRegion> regions;
};

std::string render_svg(const PlotSpec& spec);

// "1, 2, 5 x 10^k" tick step giving about `target` ticks over `range`.
double nice_tick_step(double range, int target);
// Escapes & < > " ' for XML text and attribute values.
std::string xml_escape(const std::string& text);

}  // namespace weir::load
