// aligned_buffer.hpp: a zero-initialised float array on 64-byte (cache line, AVX-512)
// boundaries.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace lz::engine {

class aligned_buffer {
public:
  aligned_buffer() = default;
  explicit aligned_buffer(int64_t count) { resize(count); }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  aligned_buffer(aligned_buffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~aligned_buffer() { std::free(data_); }

  // Discards the contents; the new buffer is zeroed.
  void resize(int64_t count) {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    if (count <= 0) return;
    if (static_cast<uint64_t>(count) > (SIZE_MAX - 63) / sizeof(float)) throw std::bad_alloc();
    const size_t bytes = (static_cast<size_t>(count) * sizeof(float) + 63) / 64 * 64;
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, bytes);
    size_ = count;
  }
  void zero() {
    if (data_ != nullptr) std::memset(data_, 0, static_cast<size_t>(size_) * sizeof(float));
  }

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }

private:
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace lz::engine
