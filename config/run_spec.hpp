// run_spec.hpp: the run spec, one TOML file with a section per concern.
//
// Every key has a default, a line of help and, where it has one, a unit in its name.
// parse_spec() reports every problem at once (key path, what is wrong, how to fix it)
// by throwing spec_error before anything starts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"

namespace lz::config {

struct run_section {
  std::string name = "tiny";          // run name, used in logs and checkpoints
  int64_t steps = 300;                // optimizer steps to train
  uint64_t seed = 1337;               // seed for init, data order and sampling
  int64_t val_every_steps = 50;       // validation loss every N steps (0: only at the end)
  int64_t val_batches = 8;            // micro-batches of the validation set per evaluation
  int64_t sample_tokens = 200;        // tokens sampled from the model at the end (0: none)
  double sample_temperature = 0.8;    // softmax temperature for sampling

  bool operator==(const run_section&) const = default;
};

struct model_section {
  int64_t vocab_size = 256;           // V: real vocabulary (256 for byte-level)
  int64_t padded_vocab_size = 0;      // Vp: rows of wte; 0 rounds V up to a multiple of 128
  int64_t max_seq_len = 256;          // maxT: rows of wpe
  int64_t layers = 4;                 // L
  int64_t heads = 4;                  // NH
  int64_t channels = 128;             // C
  std::string init_from;              // llm.c gpt2 .bin to start from ("" : random init)

  bool operator==(const model_section&) const = default;
};

struct data_section {
  std::string train_shards = "data/kjv/train_*.bin";  // glob of llm.c token shards
  std::string val_shards = "data/kjv/val_*.bin";      // glob of validation shards
  int64_t seq_len = 128;              // T: tokens per sequence
  int64_t micro_batch = 8;            // B: sequences per micro slot
  int64_t slots = 2;                  // micro slots per global batch (split among ranks)

  bool operator==(const data_section&) const = default;
};

struct optimizer_section {
  double lr = 3e-3;                   // peak learning rate
  double min_lr_ratio = 0.1;          // final lr as a fraction of lr (cosine decay)
  int64_t warmup_steps = 20;          // linear warmup steps
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;          // decoupled, applied to matrices only
  double grad_clip = 1.0;             // max global gradient norm (0: no clipping)

  bool operator==(const optimizer_section&) const = default;
};

struct parallel_section {
  int64_t ranks = 1;                  // data-parallel ranks (world size)
  int64_t nodes = 1;                  // node agents the ranks are spread over
  int64_t threads_per_rank = 2;       // CPU threads per rank (OpenMP)
  std::string reduction = "exact";    // "exact": the same weights on any number of ranks
  std::string communicator = "gloo";  // how rank processes talk: "gloo" (TCP)

  bool operator==(const parallel_section&) const = default;
};

struct checkpoint_section {
  int64_t every_steps = 50;           // save every N steps (0: never)
  std::string dir;                    // shards in DIR/RUN_ID ("" : STATE_DIR/checkpoints)
  int64_t keep_last = 3;              // keep the newest K checkpoints
  int64_t keep_every = 0;             // also keep every M-th step (0: none)
  bool async = true;                  // write in the background
  std::string when_busy = "wait";     // a save due while one is in flight: "wait" or "skip"

  bool operator==(const checkpoint_section&) const = default;
};

// How failures are detected and recovered from; none of these changes what is computed.
struct fault_tolerance_section {
  int64_t heartbeat_interval_ms = 500;   // node agents and workers say they are alive this often
  int64_t heartbeat_timeout_ms = 3000;   // a node silent this long is lost
  double hang_factor = 2.0;              // hang timeout = factor x p99 step time + grace
  int64_t hang_grace_ms = 1000;
  int64_t hang_initial_timeout_ms = 30000;  // while a generation has timed fewer than 5 steps
  int64_t min_ranks = 1;                 // shrink no further; below it the run stops
  int64_t max_ranks = 0;                 // grow no further (0: parallel.ranks)
  int64_t replace_timeout_ms = 3000;     // wait this long for a replacement before shrinking
  int64_t respawn_retries = 3;           // faults of one slot in a row before it is quarantined
                                         // (0: a fault stops the run)
  int64_t respawn_backoff_ms = 200;      // before the first respawn; doubles with each failure
  int64_t replica_every_steps = 1;       // in-memory snapshot and buddy copy (0: disk only)
  int64_t max_nonfinite_steps = 3;       // non-finite steps in a row before the run stops

  bool operator==(const fault_tolerance_section&) const = default;
  // max_ranks with 0 resolved.
  int64_t resolved_max_ranks(int64_t ranks) const { return max_ranks > 0 ? max_ranks : ranks; }
};

struct logging_section {
  std::string level = "info";         // trace, debug, info, warn, error

  bool operator==(const logging_section&) const = default;
};

struct run_spec {
  run_section run;
  model_section model;
  data_section data;
  optimizer_section optimizer;
  parallel_section parallel;
  checkpoint_section checkpoint;
  fault_tolerance_section fault_tolerance;
  logging_section logging;

  bool operator==(const run_spec&) const = default;

  // Vp after applying the "0 means round up to 128" rule.
  int64_t resolved_padded_vocab() const;
};

// One problem found in a spec: where, and what to do about it.
struct spec_problem {
  std::string key_path;   // e.g. "model.heads" (or "" for a TOML syntax error)
  std::string message;    // what is wrong and how to fix it
  std::string source;     // where it came from when not the spec itself (e.g. "--set")
};

// Thrown with every problem of a spec at once; what() lists them one per line.
class spec_invalid : public spec_error {
public:
  spec_invalid(std::string source, std::vector<spec_problem> problems);
  const std::vector<spec_problem>& problems() const { return problems_; }
  const std::string& source() const { return source_; }

private:
  std::string source_;
  std::vector<spec_problem> problems_;
};

// A --set override: "section.key=value". The value is read as a TOML value when it parses
// as one (numbers, booleans, quoted strings) and as a bare string otherwise.
struct spec_override {
  std::string key_path;
  std::string value;
};
spec_override parse_override(std::string_view text);  // throws spec_invalid

// Parses and validates TOML text (source names it in messages: a path or "<embedded>"),
// applying overrides on top. Throws spec_invalid listing every problem.
run_spec parse_spec(std::string_view toml_text, std::string_view source,
                    const std::vector<spec_override>& overrides = {});
run_spec load_spec_file(const std::string& path,
                        const std::vector<spec_override>& overrides = {});

// The smallest example spec (config/examples/tiny.toml), embedded at build time.
std::string_view embedded_default_spec_text();
run_spec embedded_default_spec(const std::vector<spec_override>& overrides = {});

// The resolved spec as an aligned text table: key, value, and a '*' where it differs
// from the default, with each key's help line.
std::string format_spec_table(const run_spec& spec);
// The resolved spec as TOML text (round-trips through parse_spec).
std::string format_spec_toml(const run_spec& spec);

}  // namespace lz::config
