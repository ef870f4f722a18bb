// rank_session.cpp: one rank of a run (see rank_session.hpp).
#include "actors/rank_session.hpp"

#include <algorithm>
#include <cstring>

#include "actors/model_descriptor.hpp"
#include "checkpoint/fault_hook.hpp"
#include "checkpoint/llmc_format.hpp"

namespace lz::actors {

namespace {

// Loads an llm.c model into `model`, whose shape the spec fixed; a mismatch names the keys.
void load_init_from(engine::gpt2& model, const std::string& path) {
  const checkpoint::llmc_model m = checkpoint::read_llmc_model(path);
  const engine::gpt2_config want = model.config();
  const engine::gpt2_config got = gpt2_config_of(m.header);
  if (!(got == want)) {
    LZ_THROW(spec_error,
             "model.init_from = '{}' has shape maxT {} V {} Vp {} L {} NH {} C {}, but the spec "
             "says maxT {} V {} Vp {} L {} NH {} C {}: set model.max_seq_len, vocab_size, "
             "padded_vocab_size, layers, heads and channels to the file's values",
             path, got.max_seq_len, got.vocab_size, got.padded_vocab_size, got.layers, got.heads,
             got.channels, want.max_seq_len, want.vocab_size, want.padded_vocab_size,
             want.layers, want.heads, want.channels);
  }
  std::copy(m.params.begin(), m.params.end(), model.params());
}

}  // namespace

rank_session::rank_session(const config::run_spec& spec, engine::communicator& comm,
                           const engine::token_dataset& train,
                           std::shared_ptr<spdlog::logger> log)
  : rank_session(spec, comm,
                 std::make_unique<engine::train_batcher>(train, spec.run.seed, spec.data.seq_len,
                                                         spec.data.slots, spec.data.micro_batch),
                 std::move(log)) {}

rank_session::rank_session(const config::run_spec& spec, engine::communicator& comm,
                           std::unique_ptr<engine::train_batcher> own,
                           std::shared_ptr<spdlog::logger> log)
  : rank_session(spec, comm, *own, std::move(log)) {
  own_batcher_ = std::move(own);
}

rank_session::rank_session(const config::run_spec& spec, engine::communicator& comm,
                           engine::batch_source& batches, std::shared_ptr<spdlog::logger> log)
  : spec_(spec), comm_(comm), log_(std::move(log)) {
  backend_ = kernels::make_cpu_backend(static_cast<int>(spec.parallel.threads_per_rank));
  model_ = std::make_unique<engine::gpt2>(engine::gpt2_config::from_spec(spec), *backend_);
  owned_ = engine::owner_range(model_->num_params(), comm.world_size(), comm.rank());
  optimizer_ = std::make_unique<engine::adamw_optimizer>(
      model_->layout(), owned_.begin, owned_.end,
      engine::adamw_options{.beta1 = spec.optimizer.beta1, .beta2 = spec.optimizer.beta2,
                            .eps = spec.optimizer.eps,
                            .weight_decay = spec.optimizer.weight_decay});
  stepper_ = std::make_unique<engine::train_step>(
      *model_, *optimizer_, batches,
      engine::lr_schedule{spec.optimizer.lr, spec.optimizer.min_lr_ratio,
                          spec.optimizer.warmup_steps, spec.run.steps},
      engine::train_step_options{.seq_len = spec.data.seq_len,
                                 .micro_batch = spec.data.micro_batch,
                                 .slots = spec.data.slots,
                                 .grad_clip = spec.optimizer.grad_clip,
                                 .mode = spec.parallel.reduction == "fast"
                                             ? engine::reduction::fast
                                             : engine::reduction::exact},
      comm_);
  // After the reduction, before the update: a snapshot in flight waits here. (Fault point
  // "train.before_update": this rank dies between two collectives, its peers in the second.)
  stepper_->set_before_update([this] {
    checkpoint::fault_point("train.before_update", step_in_progress_, rank());
    if (ckpt_) ckpt_->wait_snapshot();
  });
  descriptor_ = model_descriptor(model_->config());
}

rank_session::~rank_session() { detach_checkpointer(); }

std::vector<checkpoint::restore_target> rank_session::restore_targets() {
  return {{"params", {0, model_->num_params()}, model_->params()},
          {"adam_m", {owned_.begin, owned_.end}, optimizer_->m()},
          {"adam_v", {owned_.begin, owned_.end}, optimizer_->v()}};
}

void rank_session::init_weights() {
  if (spec_.model.init_from.empty()) {
    model_->init_random(spec_.run.seed);
  } else {
    load_init_from(*model_, spec_.model.init_from);
  }
}

engine::step_result rank_session::step(int64_t step) {
  const bool filling = ckpt_ && ckpt_->snapshot_open();  // this update fills a snapshot
  step_in_progress_ = step + 1;
  if (checkpoint::fault_nan("train.loss", step + 1, rank())) stepper_->inject_nonfinite_loss();
  const engine::step_result r = stepper_->run(step);
  if (filling) {
    if (r.discarded) {
      finish_open_snapshot();  // it changed nothing: the state before it is the snapshot
    } else {
      ckpt_->end_snapshot();
    }
  }
  return r;
}

bool rank_session::any_rank_stops(bool mine) {
  mine = mine || stop_requested_;
  if (comm_.world_size() == 1) return mine;
  std::vector<double> votes(static_cast<size_t>(comm_.world_size()), 0.0);
  votes[static_cast<size_t>(comm_.rank())] = mine ? 1.0 : 0.0;
  comm_.all_gather_v(votes.data(), std::vector<int64_t>(votes.size(), 1));
  return std::any_of(votes.begin(), votes.end(), [](double v) { return v != 0.0; });
}

void rank_session::keep_copy(checkpoint::memory_snapshot& snap, int64_t steps_done,
                             int replica_to, int replica_from) {
  const int64_t P = model_->num_params();
  checkpoint::held_copy& own = snap.own_next;
  own.resize({owned_.begin, owned_.end});
  std::copy_n(model_->params() + owned_.begin, owned_.size(), own.params.data());
  std::copy_n(optimizer_->m(), owned_.size(), own.adam_m.data());
  std::copy_n(optimizer_->v(), owned_.size(), own.adam_v.data());
  own.step = steps_done;
  checkpoint::held_copy& replica = snap.replica_next;
  replica.step = -1;
  if (replica_to != rank()) {
    const engine::owned_range theirs = engine::owner_range(P, world_size(), replica_from);
    replica.resize({theirs.begin, theirs.end});
    using transfer = engine::communicator::transfer;
    const auto bytes = [](const checkpoint::held_copy& c) {
      return static_cast<int64_t>(c.range.size() * static_cast<int64_t>(sizeof(float)));
    };
    std::vector<transfer> sends, recvs;
    std::vector<float>* mine[] = {&own.params, &own.adam_m, &own.adam_v};
    std::vector<float>* in[] = {&replica.params, &replica.adam_m, &replica.adam_v};
    for (uint32_t t = 0; t < 3; t++) {
      sends.push_back({.peer = replica_to, .tag = t, .data = mine[t]->data(), .bytes = bytes(own)});
      recvs.push_back({.peer = replica_from, .tag = t, .data = in[t]->data(), .bytes = bytes(replica)});
    }
    comm_.exchange(sends, recvs);
    replica.step = steps_done;
  }
  // both complete: they replace the copies kept so far
  std::swap(snap.own, snap.own_next);
  std::swap(snap.replica, snap.replica_next);
}

void rank_session::restore_from_memory(const checkpoint::memory_snapshot& snap, int64_t step,
                                       const std::vector<checkpoint::held_range>& held) {
  const int64_t P = model_->num_params();
  const int W = world_size(), me = rank();
  std::vector<std::vector<checkpoint::flat_range>> all(static_cast<size_t>(W), {{0, P}}), moments;
  for (int r = 0; r < W; r++) {
    const engine::owned_range o = engine::owner_range(P, W, r);
    moments.push_back({{o.begin, o.end}});
  }
  const auto params_plan = checkpoint::plan_memory_restore(held, all);
  const auto moments_plan = checkpoint::plan_memory_restore(held, moments);
  // The copy held[i] of this rank.
  const auto mine = [&](size_t i) -> const checkpoint::held_copy& {
    const checkpoint::held_copy& c = held[i].which == 0 ? snap.own : snap.replica;
    LZ_CHECK(c.step == step && c.range == held[i].range,
             "rank {} holds a copy of step {} over [{}, {}), the restore expects step {} over "
             "[{}, {})", me, c.step, c.range.begin, c.range.end, step, held[i].range.begin,
             held[i].range.end);
    return c;
  };
  using transfer = engine::communicator::transfer;
  std::vector<transfer> sends, recvs;
  // tensor t of piece p: params (t 0) into the whole vector, the moments (t 1, 2) into the
  // range this rank owns
  const auto move = [&](const checkpoint::memory_piece& p, uint32_t tag, int t) {
    const checkpoint::held_range& from = held[p.copy];
    const int64_t n = p.range.size();
    if (from.rank == me) {
      const checkpoint::held_copy& c = mine(p.copy);
      const std::vector<float>& src = t == 0 ? c.params : t == 1 ? c.adam_m : c.adam_v;
      float* data = const_cast<float*>(src.data()) + (p.range.begin - c.range.begin);
      if (p.to != me) {
        sends.push_back({.peer = p.to, .tag = tag, .data = data, .bytes = n * 4});
        return;
      }
    }
    if (p.to != me) return;
    float* out = t == 0 ? model_->params() + p.range.begin
                        : (t == 1 ? optimizer_->m() : optimizer_->v()) + (p.range.begin - owned_.begin);
    if (from.rank == me) {
      const checkpoint::held_copy& c = mine(p.copy);
      const std::vector<float>& src = t == 0 ? c.params : t == 1 ? c.adam_m : c.adam_v;
      std::copy_n(src.data() + (p.range.begin - c.range.begin), n, out);
    } else {
      recvs.push_back({.peer = from.rank, .tag = tag, .data = out, .bytes = n * 4});
    }
  };
  uint32_t tag = 0;
  for (const auto& p : params_plan) move(p, tag++, 0);
  for (const auto& p : moments_plan) {
    move(p, tag++, 1);
    move(p, tag++, 2);
  }
  comm_.exchange(sends, recvs);
}

void rank_session::attach_checkpointer(checkpoint::commit_protocol& committer,
                                       const checkpoint::checkpointer_options& options,
                                       const std::string& run_id, int64_t generation) {
  ckpt_ = std::make_unique<checkpoint::checkpointer>(committer, options, log_);
  run_id_ = run_id;
  generation_ = generation;
  if (spec_.checkpoint.every_steps > 0) ckpt_->reserve(3, owned_.size());
}

checkpoint::shard_meta rank_session::meta_for(int64_t steps_done) const {
  checkpoint::shard_meta meta;
  meta.run_id = run_id_;
  meta.step = steps_done;
  meta.generation = generation_;
  meta.world_size = comm_.world_size();
  meta.rank = comm_.rank();
  meta.flat_total = model_->num_params();
  meta.range = {owned_.begin, owned_.end};
  meta.data_seed = spec_.run.seed;
  meta.model = descriptor_;
  return meta;
}

std::vector<checkpoint::tensor_source> rank_session::sources() const {
  return {{"params", model_->params() + owned_.begin, owned_.size()},
          {"adam_m", optimizer_->m(), owned_.size()},
          {"adam_v", optimizer_->v(), owned_.size()}};
}

void rank_session::save_after(int64_t steps_done, bool final) {
  LZ_CHECK(ckpt_ != nullptr, "save_after() without a checkpointer");
  if (final) {
    ckpt_->save(meta_for(steps_done), sources());
    return;
  }
  const auto buffers = ckpt_->begin_snapshot(meta_for(steps_done), {"params", "adam_m", "adam_v"});
  if (buffers) stepper_->snapshot_next_update({(*buffers)[0], (*buffers)[1], (*buffers)[2]});
}

void rank_session::finish_open_snapshot() {
  if (!ckpt_ || !ckpt_->snapshot_open()) return;
  stepper_->cancel_snapshot();
  ckpt_->end_snapshot_by_copy(sources());
}

void rank_session::wait_checkpoint_idle() {
  if (ckpt_) ckpt_->wait_idle();
}

checkpoint::checkpointer_stats rank_session::checkpoint_stats() const {
  return ckpt_ ? ckpt_->stats() : checkpoint::checkpointer_stats{};
}

void rank_session::detach_checkpointer() {
  if (!ckpt_) return;
  ckpt_.reset();  // waits for its save in flight; an open snapshot counts as failed
}

}  // namespace lz::actors
