// run_spec.cpp: parse, override and validate a run spec, reporting every problem at once.
#include "config/run_spec.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/spec_reader.hpp"
#include "config/spec_validate.hpp"

namespace lz::config {
namespace {

constexpr int64_t vocab_padding = 128;  // Vp rounds V up to this multiple

// One line per problem, "SOURCE: KEY: MESSAGE", then a count.
std::string format_problems(const std::string& source, const std::vector<spec_problem>& problems) {
  std::string text;
  for (const spec_problem& p : problems) {
    text += p.source.empty() ? source : p.source;
    if (!p.key_path.empty()) text += ": " + p.key_path;
    text += ": " + p.message + "\n";
  }
  text += fmt::format("{} problem{} in run spec {}", problems.size(),
                      problems.size() == 1 ? "" : "s", source);
  return text;
}

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

[[noreturn]] void throw_override_problem(std::string key_path, std::string message) {
  const std::string source(override_source);
  throw spec_invalid(source, {{std::move(key_path), std::move(message), source}});
}

}  // namespace

int64_t run_spec::resolved_padded_vocab() const {
  if (model.padded_vocab_size != 0) return model.padded_vocab_size;
  return (model.vocab_size + vocab_padding - 1) / vocab_padding * vocab_padding;
}

spec_invalid::spec_invalid(std::string source, std::vector<spec_problem> problems)
  : spec_error(format_problems(source, problems), __FILE__, __LINE__),
    source_(std::move(source)),
    problems_(std::move(problems)) {}

spec_override parse_override(std::string_view text) {
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos)
    throw_override_problem("", fmt::format("'{}' has no '=': write section.key=value, "
                                           "e.g. model.layers=6", text));
  const std::string_view key_path = trim(text.substr(0, equals));
  const size_t dot = key_path.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == key_path.size())
    throw_override_problem(std::string(key_path),
                           fmt::format("'{}' is not section.key: write section.key=value, "
                                       "e.g. model.layers=6", key_path));
  return {std::string(key_path), std::string(trim(text.substr(equals + 1)))};
}

run_spec parse_spec(std::string_view toml_text, std::string_view source,
                    const std::vector<spec_override>& overrides) {
  run_spec spec;
  std::vector<spec_problem> problems;
  const bool readable = read_spec_toml(toml_text, source, spec, problems);
  for (const spec_override& change : overrides) apply_override(change, spec, problems);
  if (readable) {
    // Range rules on the values read; a key already reported is not reported twice, and a
    // problem at a key that a --set override gave its value is that override's.
    for (spec_problem& p : validate_spec(spec)) {
      const auto same_key = [&](const spec_problem& q) { return q.key_path == p.key_path; };
      if (std::any_of(problems.begin(), problems.end(), same_key)) continue;
      const auto overridden = [&](const spec_override& o) { return o.key_path == p.key_path; };
      if (std::any_of(overrides.begin(), overrides.end(), overridden))
        p.source = std::string(override_source);
      problems.push_back(std::move(p));
    }
  }
  if (!problems.empty()) throw spec_invalid(std::string(source), std::move(problems));
  return spec;
}

run_spec load_spec_file(const std::string& path, const std::vector<spec_override>& overrides) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec && status.type() != std::filesystem::file_type::not_found)
    LZ_THROW(spec_error, "cannot read run spec '{}': {}: check the path and its permissions",
             path, ec.message());
  if (!std::filesystem::exists(status))
    LZ_THROW(spec_error, "run spec '{}' does not exist: check the path, or leave it out to "
             "use the embedded default (config/examples/tiny.toml)", path);
  if (!std::filesystem::is_regular_file(status))
    LZ_THROW(spec_error, "run spec '{}' is not a regular file: pass the path of a .toml file",
             path);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    LZ_THROW(spec_error, "cannot read run spec '{}': {}: check its permissions", path,
             std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_spec(text.str(), path, overrides);
}

run_spec embedded_default_spec(const std::vector<spec_override>& overrides) {
  return parse_spec(embedded_default_spec_text(), "<embedded default>", overrides);
}

}  // namespace lz::config
