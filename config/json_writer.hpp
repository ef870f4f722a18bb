// json_writer.hpp: one flat JSON object per line (metrics, summaries, --json output).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace lz::config {

class json_object {
public:
  json_object& add(std::string_view key, std::string_view value) {
    key_(key);
    quote_(value);
    return *this;
  }
  json_object& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  json_object& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  json_object& add(std::string_view key, double value) {
    key_(key);
    // shortest text that reads back to the same double; JSON has no inf or nan
    text_ += std::isfinite(value) ? fmt::format("{}", value) : std::string("null");
    return *this;
  }
  json_object& add(std::string_view key, int64_t value) {
    key_(key);
    text_ += std::to_string(value);
    return *this;
  }
  json_object& add(std::string_view key, int value) { return add(key, int64_t{value}); }
  json_object& add(std::string_view key, bool value) {
    key_(key);
    text_ += value ? "true" : "false";
    return *this;
  }
  // Inserts already-formatted JSON (an array or a nested object).
  json_object& add_raw(std::string_view key, std::string_view json) {
    key_(key);
    text_ += json;
    return *this;
  }
  std::string str() const { return text_ + "}"; }

private:
  void key_(std::string_view key) {
    text_ += text_.size() > 1 ? "," : "";
    quote_(key);
    text_ += ":";
  }
  void quote_(std::string_view s) {
    text_ += '"';
    for (char c : s) {
      switch (c) {
        case '"': text_ += "\\\""; break;
        case '\\': text_ += "\\\\"; break;
        case '\n': text_ += "\\n"; break;
        case '\r': text_ += "\\r"; break;
        case '\t': text_ += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            text_ += fmt::format("\\u{:04x}", static_cast<int>(c));
          } else {
            text_ += c;
          }
      }
    }
    text_ += '"';
  }
  std::string text_ = "{";
};

}  // namespace lz::config
