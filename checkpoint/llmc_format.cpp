#include "checkpoint/llmc_format.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "checkpoint/file_io.hpp"
#include "config/error.hpp"

namespace lz::checkpoint {

namespace {
constexpr int32_t k_magic = 20240326;
constexpr int32_t k_version_fp32 = 3;
constexpr int32_t k_version_bf16 = 5;
constexpr int32_t k_token_shard_magic = 20240520;
constexpr size_t k_header_ints = 256;
}  // namespace

int64_t llmc_param_count(const llmc_header& h) {
  const int64_t Vp = h.padded_vocab_size, maxT = h.max_seq_len, L = h.layers, C = h.channels;
  return Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C;
}

void write_llmc_model(const std::string& path, const llmc_header& h, const float* params,
                      int64_t count) {
  LZ_CHECK(count == llmc_param_count(h), "{} parameters for a header that needs {}", count,
           llmc_param_count(h));
  int32_t header[k_header_ints] = {};
  header[0] = k_magic;
  header[1] = k_version_fp32;
  header[2] = h.max_seq_len;
  header[3] = h.vocab_size;
  header[4] = h.layers;
  header[5] = h.heads;
  header[6] = h.channels;
  header[7] = h.padded_vocab_size;
  write_file_durably(path, {{header, sizeof(header)},
                            {params, static_cast<size_t>(count) * sizeof(float)}});
}

llmc_model read_llmc_model(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    LZ_THROW(io_error, "cannot open model file '{}': {}", path, std::strerror(errno));
  }
  int32_t header[k_header_ints];
  if (std::fread(header, sizeof(int32_t), k_header_ints, f.get()) != k_header_ints) {
    LZ_THROW(format_error, "'{}' is shorter than llm.c's 1024-byte model header", path);
  }
  if (header[0] != k_magic) {
    LZ_THROW(format_error, "'{}' has magic {}, not llm.c's model magic {}{}", path, header[0],
             k_magic,
             header[0] == k_token_shard_magic ? " (this is a token shard, not a model)" : "");
  }
  if (header[1] != k_version_fp32) {
    LZ_THROW(format_error, "'{}' has model file version {}; only version {} (fp32) is read{}",
             path, header[1], k_version_fp32,
             header[1] == k_version_bf16 ? " (version 5 is llm.c's bf16 file: export fp32)" : "");
  }
  llmc_model m;
  m.header = {header[2], header[3], header[4], header[5], header[6], header[7]};
  const llmc_header& h = m.header;
  if (h.max_seq_len < 1 || h.vocab_size < 1 || h.layers < 1 || h.heads < 1 ||
      h.channels < 1 || h.padded_vocab_size < h.vocab_size || h.channels % h.heads != 0) {
    LZ_THROW(format_error, "'{}' has an impossible shape: maxT {} V {} L {} NH {} C {} Vp {}",
             path, h.max_seq_len, h.vocab_size, h.layers, h.heads, h.channels,
             h.padded_vocab_size);
  }
  const int64_t count = llmc_param_count(h);
  const auto want_bytes = static_cast<uintmax_t>(k_header_ints * 4 + count * 4);
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (ec || bytes != want_bytes) {
    LZ_THROW(format_error, "'{}' is {} bytes; its header (L {} C {} Vp {} maxT {}) needs {}: "
             "the file is truncated or not an llm.c fp32 model", path, bytes, h.layers,
             h.channels, h.padded_vocab_size, h.max_seq_len, want_bytes);
  }
  m.params.resize(static_cast<size_t>(count));
  if (std::fread(m.params.data(), sizeof(float), m.params.size(), f.get()) != m.params.size()) {
    LZ_THROW(io_error, "reading the parameters of '{}' failed", path);
  }
  return m;
}

}  // namespace lz::checkpoint
