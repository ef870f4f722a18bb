// model_descriptor.hpp: the model shape as text stored in every checkpoint shard
// ("gpt2 maxT=256 V=256 Vp=256 L=4 NH=4 C=128"), and back.
#pragma once

#include <string>

#include "checkpoint/llmc_format.hpp"
#include "engine/gpt2_config.hpp"

namespace lz::actors {

std::string model_descriptor(const engine::gpt2_config& c);
// Throws lz::format_error for text that is not a descriptor.
engine::gpt2_config parse_model_descriptor(const std::string& text);

checkpoint::llmc_header llmc_header_of(const engine::gpt2_config& c);
engine::gpt2_config gpt2_config_of(const checkpoint::llmc_header& h);

}  // namespace lz::actors
