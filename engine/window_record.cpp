// window_record.cpp: see window_record.hpp.
#include "engine/window_record.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <xxhash.h>

#include "config/error.hpp"

namespace lz::engine {

namespace {

class window_hash {
public:
  window_hash() : state_(XXH3_createState()) { XXH3_64bits_reset(state_); }
  ~window_hash() { XXH3_freeState(state_); }
  window_hash(const window_hash&) = delete;
  window_hash& operator=(const window_hash&) = delete;
  void add(const int32_t* v, int64_t n) {
    XXH3_64bits_update(state_, v, static_cast<size_t>(n) * sizeof(int32_t));
  }
  uint64_t value() const { return XXH3_64bits_digest(state_); }

private:
  XXH3_state_t* state_;
};

}  // namespace

window_record::window_record(batch_source& inner, const std::string& path, int64_t generation,
                             int64_t tokens_per_fill)
  : inner_(inner), path_(path), generation_(generation), rows_(tokens_per_fill) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr) {
    LZ_THROW(io_error, "cannot open the record of trained windows '{}': {}; check that the "
             "state dir is writable", path, std::strerror(errno));
  }
}

window_record::~window_record() {
  if (file_ != nullptr) std::fclose(file_);
}

void window_record::fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) {
  inner_.fill(step, slot, inputs, targets);
  window_hash h;
  h.add(inputs, rows_);
  h.add(targets, rows_);
  pending_[{step, slot}] = h.value();
}

void window_record::finished(int64_t step) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->first.first > step) break;
    if (it->first.first == step) {
      std::fprintf(file_, "%lld %lld %lld %016llx\n", static_cast<long long>(generation_),
                   static_cast<long long>(step + 1), static_cast<long long>(it->first.second),
                   static_cast<unsigned long long>(it->second));
    }
    it = pending_.erase(it);  // older steps were discarded tries
  }
  if (std::fflush(file_) != 0) {
    LZ_THROW(io_error, "cannot write the record of trained windows '{}': {}", path_,
             std::strerror(errno));
  }
}

}  // namespace lz::engine
