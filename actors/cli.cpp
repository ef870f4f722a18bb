// cli.cpp: subcommands of `lazarus`.
//
//   lazarus run [SPEC] [--set section.key=value]... [--state-dir DIR] [--start-over]
//   lazarus coordinator [SPEC] [--set ...] --state-dir DIR [--listen HOST:PORT]
//   lazarus node --join HOST:PORT [--slots N] [--name NAME] [--host ADDR]
//   lazarus worker ...                             (started by a node agent)
//   lazarus spec print [SPEC] [--set ...]        the resolved spec (table or --toml)
//   lazarus data prepare --input FILE... --output DIR [--val-fraction F]
//   lazarus ckpt ls | verify | inspect | events STATE_DIR [--step N] [--json]
//   lazarus ckpt rebuild-catalog STATE_DIR [--checkpoint-dir DIR]
//   lazarus ckpt export --format llmc STATE_DIR OUT.bin [--step N]
//   lazarus sample STATE_DIR [--prompt TEXT] [--tokens N]
#include "actors/cli.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "actors/ckpt_commands.hpp"
#include "actors/coordinator.hpp"
#include "actors/launcher.hpp"
#include "actors/node_agent.hpp"
#include "actors/process_util.hpp"
#include "actors/run_outputs.hpp"
#include "actors/worker.hpp"
#include "actors/stop_signal.hpp"
#include "actors/run_files.hpp"
#include "checkpoint/llmc_format.hpp"
#include "config/run_spec.hpp"
#include "engine/prepare.hpp"

namespace lz::actors {

namespace {

struct spec_args {
  std::string path;                // "" : the embedded default
  std::vector<std::string> sets;   // --set section.key=value
};

void add_spec_args(CLI::App* cmd, spec_args& args) {
  cmd->add_option("spec", args.path, "run spec (TOML); the embedded default when omitted");
  cmd->add_option("--set", args.sets, "override a spec key: section.key=value (repeatable)");
}

config::run_spec resolve_spec(const spec_args& args) {
  std::vector<config::spec_override> overrides;
  for (const auto& s : args.sets) overrides.push_back(config::parse_override(s));
  return args.path.empty() ? config::embedded_default_spec(overrides)
                           : config::load_spec_file(args.path, overrides);
}

// The spec arguments as given, for a child process that resolves the same spec.
std::vector<std::string> spec_argv(const spec_args& args) {
  std::vector<std::string> out;
  if (!args.path.empty()) out.push_back(args.path);
  for (const auto& s : args.sets) out.insert(out.end(), {"--set", s});
  return out;
}

int cmd_run(const spec_args& args, std::string state_dir, bool no_progress, bool start_over) {
  const config::run_spec spec = resolve_spec(args);  // a bad spec stops here, before any child
  if (state_dir.empty()) state_dir = "runs/" + spec.run.name;
  return run_launcher(spec, {.spec_args = spec_argv(args), .state_dir = state_dir,
                             .progress = !no_progress, .start_over = start_over});
}

int cmd_coordinator(const spec_args& args, std::string state_dir, const std::string& listen,
                    int ready_fd, bool no_progress, bool start_over) {
  die_with_parent();
  const config::run_spec spec = resolve_spec(args);
  if (state_dir.empty()) state_dir = "runs/" + spec.run.name;
  return run_coordinator(spec, {.state_dir = state_dir, .listen = listen, .ready_fd = ready_fd,
                                .progress = !no_progress,
                                .start = {.start_over = start_over}});
}

int cmd_spec_print(const spec_args& args, bool toml) {
  const config::run_spec spec = resolve_spec(args);
  std::printf("%s\n", toml ? config::format_spec_toml(spec).c_str()
                           : config::format_spec_table(spec).c_str());
  return 0;
}

int cmd_data_prepare(const std::vector<std::string>& inputs, const std::string& output,
                     double val_fraction) {
  const engine::prepare_result r = engine::prepare_text_shards(inputs, output, val_fraction);
  std::printf("prepared %lld train and %lld validation tokens (byte-level) in %s:\n",
              static_cast<long long>(r.train_tokens), static_cast<long long>(r.val_tokens),
              output.c_str());
  for (const auto& f : r.files) std::printf("  %s\n", f.c_str());
  return 0;
}

// Adds the arguments every `lazarus ckpt` command takes.
void add_ckpt_args(CLI::App* cmd, ckpt_command_options& o, int64_t& step, bool with_json) {
  cmd->add_option("state_dir", o.state_dir, "state dir of a run")->required();
  cmd->add_option("--step", step, "the checkpoint at this step");
  cmd->add_option("--checkpoint-dir", o.checkpoint_dir,
                  "where the step_* directories are, when not where the catalog recorded them "
                  "(DIR itself, or DIR/RUN_ID for a run's checkpoint.dir)");
  if (with_json) cmd->add_flag("--json", o.json, "one JSON object per line");
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"Lazarus: fault-tolerant training of transformer language models"};
  app.require_subcommand(1);

  spec_args run_args;
  std::string state_dir;
  bool no_progress = false, start_over = false;
  auto* run = app.add_subcommand("run", "train a model from a run spec");
  add_spec_args(run, run_args);
  run->add_option("--state-dir", state_dir, "where the run keeps its files (runs/NAME)");
  run->add_flag("--no-progress", no_progress, "no progress line on the terminal");
  run->add_flag("--start-over", start_over,
                "train from step 0 even though the state dir holds a run (its catalog, "
                "checkpoints and metrics move to STATE_DIR/attic/TIME; nothing is deleted)");

  spec_args coord_args;
  std::string coord_state_dir, listen = "127.0.0.1:0";
  int ready_fd = -1;
  bool coord_no_progress = false, coord_start_over = false;
  auto* coord = app.add_subcommand("coordinator", "the daemon of one run: node agents join it");
  add_spec_args(coord, coord_args);
  coord->add_option("--state-dir", coord_state_dir, "where the run keeps its files (runs/NAME)");
  coord->add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port; the "
                    "address goes to STATE_DIR/coordinator.addr)");
  coord->add_option("--ready-fd", ready_fd, "write the address to this descriptor once listening")
      ->group("");
  coord->add_flag("--no-progress", coord_no_progress, "no progress line on the terminal");
  coord->add_flag("--start-over", coord_start_over, "as for lazarus run");

  node_options node_opts;
  auto* node = app.add_subcommand("node", "a node agent: joins a coordinator and runs its ranks");
  node->add_option("--join", node_opts.join, "the coordinator, HOST:PORT")->required();
  node->add_option("--slots", node_opts.slots, "rank slots this node offers")
      ->check(CLI::PositiveNumber);
  node->add_option("--name", node_opts.name, "this node's name in the run (default: host name)");
  node->add_option("--host", node_opts.host,
                   "the address this node's ranks bind their communicator to");

  worker_options worker_opts;
  int64_t worker_feeder = 0;
  auto* worker = app.add_subcommand("worker", "one rank (started by a node agent, not by hand)");
  worker->group("");
  worker->add_option("--coordinator", worker_opts.coordinator)->required();
  worker->add_option("--rank", worker_opts.rank)->required();
  worker->add_option("--generation", worker_opts.generation)->required();
  worker->add_option("--node-id", worker_opts.node_id)->required();
  worker->add_option("--feeder-port", worker_feeder)->required()->check(CLI::Range(1, 65535));
  worker->add_option("--host", worker_opts.host);

  spec_args print_args;
  bool print_toml = false;
  auto* spec = app.add_subcommand("spec", "work with run specs");
  spec->require_subcommand(1);
  auto* print = spec->add_subcommand("print", "print the resolved spec");
  add_spec_args(print, print_args);
  print->add_flag("--toml", print_toml, "as TOML instead of a table");

  std::vector<std::string> inputs;
  std::string output;
  double val_fraction = 0.05;
  auto* data = app.add_subcommand("data", "prepare training data");
  data->require_subcommand(1);
  auto* prepare = data->add_subcommand("prepare", "tokenize text files into token shards");
  prepare->add_option("--input", inputs, "text files")->required()->check(CLI::ExistingFile);
  prepare->add_option("--output", output, "output directory")->required();
  prepare->add_option("--val-fraction", val_fraction, "fraction kept for validation")
      ->check(CLI::Range(0.0, 0.5));

  std::string format = "llmc", out_path;
  ckpt_command_options ckpt_opts;
  int64_t ckpt_step = -1;
  auto* ckpt = app.add_subcommand("ckpt", "list, verify, inspect and export checkpoints");
  ckpt->require_subcommand(1);
  auto* ls = ckpt->add_subcommand("ls", "list the checkpoints of a state dir");
  auto* verify = ckpt->add_subcommand("verify", "re-read every shard and check every checksum");
  auto* inspect = ckpt->add_subcommand("inspect", "manifest, shards, ranges and tensor table");
  auto* exp = ckpt->add_subcommand("export", "write the weights of a run in another format");
  auto* events = ckpt->add_subcommand("events", "the run's events: commits, failures, "
                                      "fallbacks, resumes, changed and refused specs");
  auto* rebuild = ckpt->add_subcommand("rebuild-catalog", "rebuild a lost or damaged catalog "
                                       "from the shard files (the old one is kept)");
  add_ckpt_args(ls, ckpt_opts, ckpt_step, true);
  add_ckpt_args(verify, ckpt_opts, ckpt_step, true);
  add_ckpt_args(inspect, ckpt_opts, ckpt_step, true);
  add_ckpt_args(exp, ckpt_opts, ckpt_step, false);
  add_ckpt_args(events, ckpt_opts, ckpt_step, true);
  add_ckpt_args(rebuild, ckpt_opts, ckpt_step, false);
  exp->add_option("--format", format, "output format (llmc: llm.c's gpt2 .bin)");
  exp->add_option("out", out_path, "output file")->required();

  std::string sample_dir, prompt;
  int64_t sample_count = 200;
  double temperature = 0.8;
  uint64_t seed = 1;
  int threads = 2;
  auto* sample = app.add_subcommand("sample", "sample text from a run's final model");
  sample->add_option("state_dir", sample_dir, "state dir of a run")->required();
  sample->add_option("--prompt", prompt, "text to continue");
  sample->add_option("--tokens", sample_count, "tokens to sample")->check(CLI::PositiveNumber);
  sample->add_option("--temperature", temperature, "softmax temperature")
      ->check(CLI::PositiveNumber);
  sample->add_option("--seed", seed, "sampling seed");
  sample->add_option("--threads", threads, "CPU threads")->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (run->parsed()) return cmd_run(run_args, state_dir, no_progress, start_over);
    if (coord->parsed()) {
      return cmd_coordinator(coord_args, coord_state_dir, listen, ready_fd, coord_no_progress,
                             coord_start_over);
    }
    if (node->parsed()) return run_node(node_opts);
    if (worker->parsed()) {
      worker_opts.feeder_port = static_cast<uint16_t>(worker_feeder);
      return run_worker(worker_opts);
    }
    if (print->parsed()) return cmd_spec_print(print_args, print_toml);
    if (prepare->parsed()) return cmd_data_prepare(inputs, output, val_fraction);
    if (ckpt_step >= 0) ckpt_opts.step = ckpt_step;
    if (ls->parsed()) return ckpt_ls(ckpt_opts);
    if (verify->parsed()) return ckpt_verify(ckpt_opts);
    if (inspect->parsed()) return ckpt_inspect(ckpt_opts);
    if (events->parsed()) return ckpt_events(ckpt_opts);
    if (rebuild->parsed()) return ckpt_rebuild_catalog(ckpt_opts);
    if (exp->parsed()) {
      if (format != "llmc") {
        LZ_THROW(spec_error, "unknown export format '{}': the supported format is 'llmc'", format);
      }
      return ckpt_export_llmc(ckpt_opts, out_path);
    }
    if (sample->parsed()) {
      std::printf("%s\n",
                  sample_from_state_dir(sample_dir, prompt, sample_count, temperature, seed, threads)
                      .c_str());
      return 0;
    }
  } catch (const config::spec_invalid& e) {
    std::fprintf(stderr, "lazarus: the run spec is invalid (%zu problem%s):\n",
                 e.problems().size(), e.problems().size() == 1 ? "" : "s");
    for (const auto& p : e.problems()) {
      std::fprintf(stderr, "  %s: %s%s%s\n",
                   p.source.empty() ? e.source().c_str() : p.source.c_str(), p.key_path.c_str(),
                   p.key_path.empty() ? "" : ": ", p.message.c_str());
    }
    return 2;
  } catch (const lz::error& e) {
    std::fprintf(stderr, "lazarus: error: %s\n", e.what());
    return 1;
  }
  return 1;
}

}  // namespace lz::actors
