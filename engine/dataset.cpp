// dataset.cpp: loading token shards and filling training / validation batches.
#include "engine/dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <vector>

#include <xxhash.h>

#include "config/error.hpp"          // LZ_THROW, LZ_CHECK
#include "engine/token_shard.hpp"    // read_token_shard, expand_shard_glob

namespace lz::engine {

token_dataset::token_dataset(const std::vector<std::string>& paths, int64_t vocab_size)
  : paths_(paths) {
  if (paths.empty())
    LZ_THROW(lz::data_error, "data set: no token shard files given; create them with "
             "`lazarus data prepare`");
  for (const auto& path : paths) {
    std::vector<uint16_t> shard = read_token_shard(path, vocab_size);
    shard_tokens_.push_back(static_cast<int64_t>(shard.size()));
    if (tokens_.empty()) {
      tokens_ = std::move(shard);
    } else {
      tokens_.insert(tokens_.end(), shard.begin(), shard.end());
    }
  }
}

token_dataset token_dataset::from_glob(const std::string& pattern, int64_t vocab_size) {
  return token_dataset(expand_shard_glob(pattern), vocab_size);
}

std::string data_fingerprint(const token_dataset& data) {
  std::string out;
  const uint16_t* at = data.tokens().data();
  for (size_t i = 0; i < data.paths().size(); ++i) {
    const int64_t n = data.shard_tokens()[i];
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(data.paths()[i], ec);
    const uint64_t hash = XXH3_64bits(at, static_cast<size_t>(n) * sizeof(uint16_t));
    out += fmt::format("{} bytes={} tokens={} xxh3={:016x}\n",
                       std::filesystem::path(data.paths()[i]).filename().string(),
                       ec ? 0 : static_cast<uint64_t>(bytes), n, hash);
    at += n;
  }
  return out;
}

std::string describe_fingerprint_change(const std::string& recorded, const std::string& now) {
  if (recorded == now) return "";
  std::vector<std::string> a, b;
  for (auto [text, lines] : {std::pair{&recorded, &a}, std::pair{&now, &b}}) {
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) lines->push_back(line);
  }
  std::string out;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string before = i < a.size() ? a[i] : "(none)";
    const std::string after = i < b.size() ? b[i] : "(none)";
    if (before != after) out += fmt::format("  shard {}: was {}, now {}\n", i, before, after);
  }
  return out;
}

int64_t token_dataset::num_windows(int64_t seq_len) const {
  LZ_CHECK(seq_len >= 1, "seq_len {}", seq_len);
  return num_tokens() < 1 ? 0 : (num_tokens() - 1) / seq_len;
}

void token_dataset::fill_window(int64_t window, int64_t seq_len, int32_t* inputs,
                                int32_t* targets) const {
  LZ_CHECK(window >= 0 && window < num_windows(seq_len), "window {} of {} (seq_len {})",
           window, num_windows(seq_len), seq_len);
  const uint16_t* src = tokens_.data() + window * seq_len;  // (T + 1,)
  for (int64_t t = 0; t < seq_len; ++t) {
    inputs[t] = src[t];
    targets[t] = src[t + 1];
  }
}

train_batcher::train_batcher(const token_dataset& data, uint64_t seed, int64_t seq_len,
                             int64_t slots, int64_t micro_batch)
  : data_(data), plan_(seed, data.num_tokens(), seq_len, slots, micro_batch) {}

void train_batcher::fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) {
  const int64_t T = plan_.seq_len();
  for (int64_t b = 0; b < plan_.micro_batch(); ++b)
    data_.fill_window(plan_.window(step, slot, b), T, inputs + b * T, targets + b * T);
}

void fill_val(const token_dataset& val, int64_t batch_index, int64_t micro_batch,
              int64_t seq_len, int32_t* inputs, int32_t* targets) {
  LZ_CHECK(batch_index >= 0 && micro_batch >= 1 && seq_len >= 1,
           "batch_index {} micro_batch {} seq_len {}", batch_index, micro_batch, seq_len);
  const int64_t windows = val.num_windows(seq_len);
  if (windows < 1)
    LZ_THROW(lz::data_error, "validation data: {} tokens cannot hold one window of "
             "data.seq_len + 1 = {} tokens; use a smaller data.seq_len or a larger "
             "validation split", val.num_tokens(), seq_len + 1);
  for (int64_t b = 0; b < micro_batch; ++b) {
    // (batch_index*micro_batch + b) mod W, reduced first so large indices cannot overflow.
    const int64_t w = ((batch_index % windows) * (micro_batch % windows) + b) % windows;
    val.fill_window(w, seq_len, inputs + b * seq_len, targets + b * seq_len);
  }
}

}  // namespace lz::engine
