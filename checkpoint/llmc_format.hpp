// llmc_format.hpp: llm.c's GPT-2 model file, so weights move between Lazarus and llm.c.
//
// Header: 256 int32, [0] magic 20240326, [1] version 3 (fp32 weights), [2] maxT, [3] V,
// [4] L, [5] NH, [6] C, [7] Vp; then the fp32 parameters in llm.c's order
// (engine/param_layout.hpp), nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lz::checkpoint {

struct llmc_header {
  int32_t max_seq_len = 0;
  int32_t vocab_size = 0;
  int32_t layers = 0;
  int32_t heads = 0;
  int32_t channels = 0;
  int32_t padded_vocab_size = 0;
  bool operator==(const llmc_header&) const = default;
};

// Number of fp32 parameters a model with this header has.
int64_t llmc_param_count(const llmc_header& h);

// Writes header and parameters to path (temporary file, fsync, rename, directory fsync).
// Throws lz::io_error (with strerror) on any failure; the old file, if any, stays intact.
void write_llmc_model(const std::string& path, const llmc_header& header, const float* params,
                      int64_t count);

struct llmc_model {
  llmc_header header;
  std::vector<float> params;
};
// Reads and validates a model file: lz::format_error naming the file for a wrong magic
// (a token shard has 20240520), an unsupported version (5 is llm.c's bf16), a header whose
// shape is impossible, or a size that does not match the header.
llmc_model read_llmc_model(const std::string& path);

}  // namespace lz::checkpoint
