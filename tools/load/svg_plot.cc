// tools/load/svg_plot.cc — axes, ticks, lines, shaded regions and legend for the SVG chart.
#include "tools/load/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace weir::load {
namespace {

constexpr double kWidth = 960;
constexpr double kPanelHeight = 260;
constexpr double kLeft = 80;
constexpr double kRight = 200;  // legend column
constexpr double kTop = 50;
constexpr double kGap = 50;  // between panels, room for the x tick labels
constexpr double kBottom = 50;
constexpr size_t kMaxLegendLines = 12;  // a panel of 64 clients names the first twelve

const char* const kLineColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                   "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                                   "#7f7f7f", "#bcbd22", "#393b79", "#637939"};
const char* const kRegionColors[] = {"#ff9896", "#c7c7c7", "#ffbb78", "#98df8a", "#aec7e8"};

struct Range {
  double lo = INFINITY;
  double hi = -INFINITY;
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

// Maps data coordinates of one panel onto the picture.
struct Frame {
  double x0, x1, y0, y1;  // data ranges
  double left, top, width, height;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * width; }
  double py(double y) const { return top + height - (y - y0) / (y1 - y0) * height; }
};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Tick labels: "120k" rather than "120000", "0.5" rather than "0.500000".
std::string tick_label(double v) {
  char buf[32];
  double a = std::fabs(v);
  if (a >= 1e9)
    std::snprintf(buf, sizeof buf, "%gG", v / 1e9);
  else if (a >= 1e6)
    std::snprintf(buf, sizeof buf, "%gM", v / 1e6);
  else if (a >= 1e4)
    std::snprintf(buf, sizeof buf, "%gk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%g", std::fabs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

void text(std::string* out, double x, double y, const std::string& s, const char* anchor,
          int size = 12, const char* extra = "") {
  *out += "<text x=\"" + num(x) + "\" y=\"" + num(y) +
          "\" font-family=\"sans-serif\" font-size=\"" + std::to_string(size) +
          "\" text-anchor=\"" + anchor + "\"" + extra + ">" + xml_escape(s) + "</text>\n";
}

void line(std::string* out, double x0, double y0, double x1, double y1, const char* color,
          double width = 1) {
  *out += "<line x1=\"" + num(x0) + "\" y1=\"" + num(y0) + "\" x2=\"" + num(x1) + "\" y2=\"" +
          num(y1) + "\" stroke=\"" + color + "\" stroke-width=\"" + num(width) + "\"/>\n";
}

Range x_range(const PlotSpec& spec) {
  Range r;
  for (const PlotPanel& p : spec.panels)
    for (const PlotSeries& s : p.series)
      for (double x : s.x) r.add(x);
  for (const PlotRegion& g : spec.regions) {
    r.add(g.x0);
    r.add(g.x1);
  }
  if (r.empty()) r = {0, 1};
  if (r.hi <= r.lo) r.hi = r.lo + 1;
  return r;
}

Range y_range(const PlotPanel& panel) {
  Range r;
  r.add(0);  // rates and latencies read best from zero
  for (const PlotSeries& s : panel.series)
    for (double y : s.y) r.add(y);
  if (r.hi <= r.lo) r.hi = r.lo + 1;
  double step = nice_tick_step(r.hi - r.lo, 5);
  r.hi = std::ceil(r.hi / step) * step;
  return r;
}

void draw_regions(std::string* out, const PlotSpec& spec, const Frame& f,
                  const std::map<std::string, const char*>& colors) {
  for (const PlotRegion& g : spec.regions) {
    double a = f.px(std::max(g.x0, f.x0)), b = f.px(std::min(g.x1, f.x1));
    if (b <= a) continue;
    *out += "<rect x=\"" + num(a) + "\" y=\"" + num(f.top) + "\" width=\"" + num(b - a) +
            "\" height=\"" + num(f.height) + "\" fill=\"" + colors.at(g.label) +
            "\" fill-opacity=\"0.35\"/>\n";
  }
}

void draw_axes(std::string* out, const Frame& f, const std::string& y_label,
               const std::string& x_label) {
  double ystep = nice_tick_step(f.y1 - f.y0, 5);
  for (double y = f.y0; y <= f.y1 + ystep * 1e-9; y += ystep) {
    line(out, f.left, f.py(y), f.left + f.width, f.py(y), "#e0e0e0");
    text(out, f.left - 6, f.py(y) + 4, tick_label(y), "end", 11);
  }
  double xstep = nice_tick_step(f.x1 - f.x0, 10);
  for (double x = std::ceil(f.x0 / xstep) * xstep; x <= f.x1 + xstep * 1e-9; x += xstep) {
    line(out, f.px(x), f.top + f.height, f.px(x), f.top + f.height + 4, "#333333");
    text(out, f.px(x), f.top + f.height + 17, tick_label(x), "middle", 11);
  }
  *out += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.width) +
          "\" height=\"" + num(f.height) + "\" fill=\"none\" stroke=\"#333333\"/>\n";
  double cy = f.top + f.height / 2;
  text(out, 18, cy, y_label, "middle", 12,
       (" transform=\"rotate(-90 18 " + num(cy) + ")\"").c_str());
  text(out, f.left + f.width / 2, f.top + f.height + 34, x_label, "middle", 12);
}

// One polyline per run of finite points, so a missing sample shows as a gap.
void draw_series(std::string* out, const PlotSeries& s, const Frame& f, const char* color) {
  std::string points;
  auto flush = [&] {
    if (!points.empty())
      *out += "<polyline fill=\"none\" stroke=\"" + std::string(color) +
              "\" stroke-width=\"1.8\" points=\"" + points + "\"/>\n";
    points.clear();
  };
  size_t n = std::min(s.x.size(), s.y.size());
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
      flush();
      continue;
    }
    if (!points.empty()) points += ' ';
    points += num(f.px(s.x[i])) + "," + num(f.py(s.y[i]));
  }
  flush();
}

void legend_entry(std::string* out, double x, double y, const std::string& label, const char* color,
                  bool swatch) {
  if (swatch)
    *out += "<rect x=\"" + num(x) + "\" y=\"" + num(y - 9) +
            "\" width=\"18\" height=\"10\" fill=\"" + color + "\" fill-opacity=\"0.35\"/>\n";
  else
    line(out, x, y - 4, x + 18, y - 4, color, 2.5);
  text(out, x + 24, y, label, "start", 12);
}

}  // namespace

double nice_tick_step(double range, int target) {
  if (!(range > 0) || target < 1) return 1;
  double raw = range / target;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double fraction = raw / magnitude;
  double nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * magnitude;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab and newline are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

std::string render_svg(const PlotSpec& spec) {
  size_t panels = std::max<size_t>(spec.panels.size(), 1);
  double height = kTop + panels * kPanelHeight + (panels - 1) * kGap + kBottom;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + num(kWidth) +
         "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(kWidth) + " " + num(height) +
         "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  // About 8.5 px a character at 16 px: a long title gets a smaller font rather than clipped ends.
  int title_size =
      std::clamp(static_cast<int>(1800 / std::max<size_t>(spec.title.size(), 1)), 10, 16);
  text(&out, kWidth / 2, 28, spec.title, "middle", title_size);

  std::map<std::string, const char*> region_colors;
  for (const PlotRegion& g : spec.regions)
    if (!region_colors.count(g.label))
      region_colors[g.label] = kRegionColors[region_colors.size() % std::size(kRegionColors)];

  Range xr = x_range(spec);
  double legend_x = kWidth - kRight + 16;
  for (size_t p = 0; p < spec.panels.size(); ++p) {
    const PlotPanel& panel = spec.panels[p];
    Range yr = y_range(panel);
    Frame f{xr.lo,
            xr.hi,
            yr.lo,
            yr.hi,
            kLeft,
            kTop + p * (kPanelHeight + kGap),
            kWidth - kLeft - kRight,
            kPanelHeight};
    draw_regions(&out, spec, f, region_colors);
    draw_axes(&out, f, panel.y_label, spec.x_label);
    double ly = f.top + 14;
    for (size_t s = 0; s < panel.series.size(); ++s) {
      const char* color = kLineColors[s % std::size(kLineColors)];
      draw_series(&out, panel.series[s], f, color);
      if (s < kMaxLegendLines) {
        legend_entry(&out, legend_x, ly, panel.series[s].name, color, false);
        ly += 18;
      } else if (s == kMaxLegendLines) {
        text(&out, legend_x, ly, "+" + std::to_string(panel.series.size() - s) + " more", "start");
        ly += 18;
      }
    }
    if (p == 0)
      for (const auto& [label, color] : region_colors) {
        legend_entry(&out, legend_x, ly, label, color, true);
        ly += 18;
      }
  }
  out += "</svg>\n";
  return out;
}

}  // namespace weir::load
