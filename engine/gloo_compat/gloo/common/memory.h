// gloo/common/memory.h, for Debian's libgloo-dev (0.0~git20220518), which installs
// gloo/transport/tcp/pair.h but not this header that pair.h includes. Only the names that
// pair.h mentions are declared. Lazarus includes pair.h to call one exported member of an
// existing tcp::Pair (signalExceptionExternal, engine/gloo_communicator.cpp); it never
// constructs a Pair or an Op, nor touches their members, so these types need not match the
// library's own. engine/CMakeLists.txt adds this directory only when the system lacks the
// header.
#pragma once

#include <memory>

namespace gloo {

template <typename T>
class ShareableNonOwningPtr {
  std::shared_ptr<T> owner_;
};

template <typename T>
class WeakNonOwningPtr {
  std::weak_ptr<T> owner_;
};

template <typename T>
class NonOwningPtr {
  std::shared_ptr<T> owner_;
};

}  // namespace gloo
