// spec_resume.cpp: the recorded and the new spec of a resumed run, compared key by key.
#include "config/spec_resume.hpp"

#include <algorithm>

namespace lz::config {

resume_diff compare_for_resume(const run_spec& recorded, const run_spec& now) {
  resume_diff diff;
  for (const spec_key& key : spec_keys()) {
    const spec_value before = key.get(recorded);
    const spec_value after = key.get(now);
    if (before == after) continue;
    key_change change{.key_path = key.path(),
                      .before = format_value(before),
                      .after = format_value(after),
                      .rule = key.resume};
    switch (key.resume) {
      case resume_rule::must_match: diff.refused.push_back(std::move(change)); break;
      case resume_rule::may_change: diff.allowed.push_back(std::move(change)); break;
      case resume_rule::by_content: diff.by_content.push_back(std::move(change)); break;
    }
  }
  return diff;
}

std::string describe_refusal(const resume_diff& diff) {
  if (diff.refused.empty()) return "";
  size_t width = 0;
  for (const key_change& change : diff.refused) width = std::max(width, change.key_path.size());
  std::string text = fmt::format(
      "cannot resume: {} key{} of the run spec differ{} from the value{} the run recorded, "
      "and {} must match:\n",
      diff.refused.size(), diff.refused.size() == 1 ? "" : "s",
      diff.refused.size() == 1 ? "s" : "", diff.refused.size() == 1 ? "" : "s",
      diff.refused.size() == 1 ? "it" : "they");
  for (const key_change& change : diff.refused) {
    const spec_key* key = find_spec_key(change.key_path);
    text += fmt::format("  {:<{}}  recorded {}, now {} ({})\n", change.key_path, width,
                        change.before, change.after,
                        key != nullptr ? key->resume_reason : describe(change.rule));
  }
  std::string sets;
  for (const key_change& change : diff.refused)
    sets += fmt::format(" --set {}={}", change.key_path, change.before);
  text += fmt::format("fix: use the recorded value{} (e.g.{}), or start a new run with "
                      "another --state-dir",
                      diff.refused.size() == 1 ? "" : "s", sets);
  return text;
}

}  // namespace lz::config
