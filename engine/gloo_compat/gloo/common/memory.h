// gloo/common/memory.h, for Debian's libgloo-dev (0.0~git20220518), which installs
// gloo/transport/tcp/pair.h but not this header that pair.h includes. Only the names that
// pair.h mentions are declared, with the library's layout: a weak reference is one
// std::weak_ptr, a strong one one std::shared_ptr (the library hands out weak references to
// an unbound buffer and, while it uses the buffer, holds a strong one, which the buffer's
// destructor waits for). Lazarus includes pair.h to reach an existing tcp::Pair
// (engine/gloo_communicator.cpp: its abort fails the pair and wakes the message the pair is
// reading or writing); it never constructs a Pair, an Op or a buffer (unbound_buffer.h names the
// constructor of a weak reference inline). engine/CMakeLists.txt adds this
// directory only when the system lacks the header.
#pragma once

#include <memory>

namespace gloo {

template <typename T>
class NonOwningPtr;
template <typename T>
class WeakNonOwningPtr;

template <typename T>
class ShareableNonOwningPtr {
  std::shared_ptr<T> owner_;
  friend class WeakNonOwningPtr<T>;
};

template <typename T>
class WeakNonOwningPtr {
public:
  explicit WeakNonOwningPtr(const ShareableNonOwningPtr<T>& root) : owner_(root.owner_) {}

private:
  std::weak_ptr<T> owner_;
  friend class NonOwningPtr<T>;
};

// A strong reference for a short use: empty once the buffer is gone.
template <typename T>
class NonOwningPtr {
public:
  explicit NonOwningPtr(const WeakNonOwningPtr<T>& weak) : owner_(weak.owner_.lock()) {}
  T* operator->() const noexcept { return owner_.get(); }
  explicit operator bool() const noexcept { return owner_ != nullptr; }

private:
  std::shared_ptr<T> owner_;
};

}  // namespace gloo
