// rendezvous_store.hpp: where the ranks of a generation find each other.
//
// A key-value store with a timed get. The ranks of a world publish their addresses under a
// prefix of their own generation (a store never forgets a key, so a new generation never
// reads an old one's). memory_store serves threads of one process; a coordinator serves a
// cluster (the distributed runtime).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "config/error.hpp"

namespace lz::engine {

class rendezvous_store {
public:
  virtual ~rendezvous_store() = default;
  virtual void set(const std::string& key, const std::vector<char>& value) = 0;
  // The value of `key`, waiting for it at most `timeout` (an io_error naming the key then).
  virtual std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) = 0;
};

class memory_store final : public rendezvous_store {
public:
  void set(const std::string& key, const std::vector<char>& value) override {
    {
      std::lock_guard lock(mutex_);
      values_[key] = value;
    }
    changed_.notify_all();
  }
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return values_.count(key) != 0; })) {
      LZ_THROW(io_error, "rendezvous: no rank published '{}' within {} ms", key, timeout.count());
    }
    return values_.at(key);
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::vector<char>> values_;
};

}  // namespace lz::engine
