// store_actor.cpp: see store_actor.hpp.
#include "actors/store_actor.hpp"

#include <algorithm>
#include <memory>
#include <string>

#include "actors/messages.hpp"
#include "config/error.hpp"

namespace lz::actors {

namespace {

using expire_atom = caf::atom_constant<caf::atom("expire")>;

struct pending_get {
  std::string key;
  caf::typed_response_promise<std::vector<char>> promise;
};

struct store_state {
  std::map<std::string, std::vector<char>> values;
  std::map<int64_t, pending_get> waiting;  // by id
  int64_t next_id = 0;
  size_t bytes = 0;                         // keys and values held
};

}  // namespace

caf::behavior store_actor(caf::event_based_actor* self, store_limits limits) {
  auto st = std::make_shared<store_state>();
  return {
      [self, st, limits](msg::store_set& s) -> caf::result<bool> {
        if (st->values.count(s.key) != 0) {
          return caf::make_error(caf::sec::runtime_error,
                                 "rendezvous: key '" + s.key + "' is already set");
        }
        const size_t bytes = s.key.size() + s.value.size();
        if (bytes > limits.max_bytes - std::min(st->bytes, limits.max_bytes)) {
          return caf::make_error(
              caf::sec::runtime_error,
              "rendezvous: key '" + s.key + "' (" + std::to_string(bytes) + " bytes) would take "
              "the store past its limit of " + std::to_string(limits.max_bytes) + " bytes (" +
              std::to_string(st->bytes) + " held): a peer keeps setting keys");
        }
        st->bytes += bytes;
        for (auto it = st->waiting.begin(); it != st->waiting.end();) {
          if (it->second.key == s.key) {
            it->second.promise.deliver(s.value);
            it = st->waiting.erase(it);
          } else {
            ++it;
          }
        }
        st->values.emplace(std::move(s.key), std::move(s.value));
        (void)self;
        return true;
      },
      [self, st](msg::store_get& g) -> caf::result<std::vector<char>> {
        if (const auto it = st->values.find(g.key); it != st->values.end()) return it->second;
        const int64_t id = st->next_id++;
        auto promise = self->make_response_promise<std::vector<char>>();
        st->waiting.emplace(id, pending_get{g.key, promise});
        self->delayed_send(self, std::chrono::milliseconds(std::max<int64_t>(g.timeout_ms, 1)),
                           expire_atom::value, id);
        return promise;
      },
      [st](expire_atom, int64_t id) {
        const auto it = st->waiting.find(id);
        if (it == st->waiting.end()) return;
        it->second.promise.deliver(caf::make_error(
            caf::sec::request_timeout, "rendezvous: no rank published '" + it->second.key + "'"));
        st->waiting.erase(it);
      },
  };
}

remote_store::remote_store(caf::actor_system& sys, caf::actor store)
  : sys_(sys), store_(std::move(store)) {}

void remote_store::set(const std::string& key, const std::vector<char>& value) {
  caf::scoped_actor self{sys_};
  std::string failure;
  self->request(store_, std::chrono::seconds(30), msg::store_set{key, value})
      .receive([](bool) {}, [&](caf::error& e) { failure = sys_.render(e); });
  if (!failure.empty()) {
    LZ_THROW(io_error, "rendezvous: cannot publish '{}' at the coordinator: {}", key, failure);
  }
}

std::vector<char> remote_store::get(const std::string& key, std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys_};
  std::vector<char> value;
  std::string failure;
  // the store answers by the timeout; the extra second covers the round trip
  self->request(store_, timeout + std::chrono::seconds(1), msg::store_get{key, timeout.count()})
      .receive([&](std::vector<char>& v) { value = std::move(v); },
               [&](caf::error& e) { failure = sys_.render(e); });
  if (!failure.empty()) {
    LZ_THROW(io_error, "rendezvous: no value for '{}' within {} ms: {}", key, timeout.count(),
             failure);
  }
  return value;
}

}  // namespace lz::actors
