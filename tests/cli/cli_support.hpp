// cli_support.hpp: running the `lazarus` executable from tests and reading what it wrote.
#pragma once

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace lz::test {

struct command_result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `lazarus ARGS` with output captured to a file in `dir`; `env` (e.g.
// "LAZARUS_FAULT=shard.mid_write@10") is put in front of the command.
// `cwd` (when given) is the directory the command starts in.
inline command_result run_lazarus(const std::string& args, const std::string& dir,
                                  const std::string& env = "", const std::string& cwd = "") {
  std::filesystem::create_directories(dir);
  const std::string log = dir + "/command.log";
  const std::string cmd = (cwd.empty() ? "" : "cd '" + cwd + "' && ") +
                          (env.empty() ? "" : "env " + env + " ") + std::string(LZ_EXE) + " " +
                          args + " > " + log + " 2>&1";
  const int status = std::system(cmd.c_str());
  command_result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.output = read_file(log);
  return r;
}

// The value of "key" in a flat JSON object (number or string), "" if absent.
inline std::string json_field(const std::string& json, const std::string& key) {
  const std::string quoted = "\"" + key + "\":";
  const size_t at = json.find(quoted);
  if (at == std::string::npos) return "";
  size_t i = at + quoted.size();
  if (i < json.size() && json[i] == '"') {
    const size_t end = json.find('"', i + 1);
    return end == std::string::npos ? "" : json.substr(i + 1, end - i - 1);
  }
  const size_t end = json.find_first_of(",}", i);
  return json.substr(i, end == std::string::npos ? std::string::npos : end - i);
}

inline double json_number(const std::string& json, const std::string& key) {
  const std::string v = json_field(json, key);
  return v.empty() ? NAN : std::stod(v);
}

// A fresh directory under the build tree for one test.
inline std::string test_dir(const std::string& name) {
  const std::string dir = std::string(LZ_BINARY_DIR) + "/test-runs/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Every file under `dir` with its size and contents' length: what a refused command must
// leave exactly as it was (paths under `except` are left out).
inline std::map<std::string, std::string> tree_snapshot(const std::string& dir,
                                                        const std::string& except = "") {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string path = e.path().string();
    if (!except.empty() && path.rfind(except, 0) == 0) continue;
    out[path] = e.is_regular_file() ? read_file(path) : std::string("<dir>");
  }
  return out;
}

inline std::string corpus_set_args() {
  const std::string data = std::string(LZ_TESTDATA) + "/kjv";
  return " --set data.train_shards=" + data + "/train_*.bin --set data.val_shards=" + data +
         "/val_*.bin ";
}

// The small spec of the multi-process tests as --set arguments: `steps` steps of data.slots
// = 4 on the test corpus, one thread per rank, a checkpoint every 5 steps, no sample.
inline std::vector<std::string> small_spec_sets(int steps, int ranks, int nodes) {
  const std::string data = std::string(LZ_TESTDATA) + "/kjv";
  std::vector<std::string> out;
  for (const std::string& kv :
       {"data.train_shards=" + data + "/train_*.bin", "data.val_shards=" + data + "/val_*.bin",
        "run.steps=" + std::to_string(steps), "parallel.ranks=" + std::to_string(ranks),
        "parallel.nodes=" + std::to_string(nodes), std::string("data.seq_len=64"),
        std::string("data.slots=4"), std::string("parallel.threads_per_rank=1"),
        std::string("run.val_every_steps=0"), std::string("run.val_batches=2"),
        std::string("run.sample_tokens=0"), std::string("checkpoint.every_steps=5")}) {
    out.insert(out.end(), {"--set", kv});
  }
  return out;
}

}  // namespace lz::test
