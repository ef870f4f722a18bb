// data_feeder.cpp: see data_feeder.hpp.
#include "actors/data_feeder.hpp"

#include <algorithm>
#include <cstring>

#include "config/error.hpp"

namespace lz::actors {

namespace {

struct feeder_state {
  engine::token_dataset data;
  engine::train_batcher batcher;
  int64_t slots, rows;  // rows: micro_batch * seq_len tokens per slot
  feeder_state(const config::run_spec& spec)
    : data(engine::token_dataset::from_glob(spec.data.train_shards, spec.model.vocab_size)),
      batcher(data, spec.run.seed, spec.data.seq_len, spec.data.slots, spec.data.micro_batch),
      slots(spec.data.slots), rows(spec.data.micro_batch * spec.data.seq_len) {}
};

}  // namespace

caf::behavior data_feeder(caf::event_based_actor* self, config::run_spec spec) {
  auto st = std::make_shared<feeder_state>(spec);
  return {
      [self, st](const msg::batch_request& r) -> caf::result<msg::batch> {
        if (r.step < 0 || r.slot_begin < 0 || r.slot_end > st->slots || r.slot_begin >= r.slot_end) {
          return caf::make_error(caf::sec::invalid_argument,
                                 fmt::format("data feeder: no slots [{}, {}) at step {} in a "
                                             "batch of {} slots", r.slot_begin, r.slot_end,
                                             r.step, st->slots));
        }
        msg::batch b{r.step, r.slot_begin, r.slot_end, {}, {}};
        const auto n = static_cast<size_t>((r.slot_end - r.slot_begin) * st->rows);
        b.inputs.resize(n);
        b.targets.resize(n);
        for (int64_t s = r.slot_begin; s < r.slot_end; s++) {
          const auto at = static_cast<size_t>((s - r.slot_begin) * st->rows);
          st->batcher.fill(r.step, s, b.inputs.data() + at, b.targets.data() + at);
        }
        (void)self;
        return b;
      },
  };
}

feeder_batches::feeder_batches(caf::actor_system& sys, caf::actor feeder, int64_t slot_begin,
                               int64_t slot_end, int64_t micro_batch, int64_t seq_len,
                               int prefetch_steps, std::chrono::milliseconds timeout)
  : self_(sys), feeder_(std::move(feeder)), slot_begin_(slot_begin), slot_end_(slot_end),
    rows_(micro_batch * seq_len), prefetch_steps_(std::max(1, prefetch_steps)),
    timeout_(timeout) {}

void feeder_batches::request(int64_t step) {
  // a plain send: the feeder's answer comes back as an ordinary message to this actor
  self_->send(feeder_, msg::batch_request{step, slot_begin_, slot_end_});
}

void feeder_batches::fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) {
  LZ_CHECK(slot >= slot_begin_ && slot < slot_end_, "slot {} outside [{}, {})", slot,
           slot_begin_, slot_end_);
  if (step < first_requested_ || step >= next_request_) {  // a new position (start, restore)
    ready_.clear();
    first_requested_ = next_request_ = step;
  }
  ready_.erase(ready_.begin(), ready_.lower_bound(step));  // steps before this one are done
  first_requested_ = std::max(first_requested_, step);
  while (next_request_ < step + prefetch_steps_) request(next_request_++);
  const auto t0 = std::chrono::steady_clock::now();
  while (ready_.count(step) == 0) {
    bool timed_out = false;
    std::string failure;
    self_->receive(
        [&](msg::batch& b) {
          if (b.step >= first_requested_ && b.step < next_request_) ready_[b.step] = std::move(b);
        },
        [&](caf::error& e) { failure = self_->system().render(e); },
        caf::after(timeout_) >> [&] { timed_out = true; });
    if (!failure.empty()) LZ_THROW(io_error, "data feeder: step {}: {}", step, failure);
    if (timed_out) {
      LZ_THROW(io_error, "data feeder: no batch for step {} within {} ms: the node agent's "
               "feeder is gone or stuck", step, timeout_.count());
    }
  }
  wait_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const msg::batch& b = ready_.at(step);
  const auto at = static_cast<size_t>((slot - slot_begin_) * rows_);
  std::memcpy(inputs, b.inputs.data() + at, static_cast<size_t>(rows_) * sizeof(int32_t));
  std::memcpy(targets, b.targets.data() + at, static_cast<size_t>(rows_) * sizeof(int32_t));
}

}  // namespace lz::actors
