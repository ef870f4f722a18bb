# shard.capnp: the header of a checkpoint shard file (see shard_format.hpp).
# Fields are only ever appended, with higher ordinals.
@0xd75e18ca1f1a7bfc;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("lz::checkpoint::schema");

struct TensorEntry {
  name @0 :Text;
  dtype @1 :Text;
  offset @2 :UInt64;
  bytes @3 :UInt64;
  xxh3 @4 :UInt64;
  chunkBytes @5 :UInt64;
  chunkXxh3 @6 :List(UInt64);
}

struct ShardHeader {
  formatVersion @0 :UInt32;
  runId @1 :Text;
  step @2 :Int64;
  generation @3 :Int64;
  worldSize @4 :Int32;
  rank @5 :Int32;
  flatTotal @6 :Int64;
  rangeBegin @7 :Int64;
  rangeEnd @8 :Int64;
  dataSeed @9 :UInt64;
  rngState @10 :List(UInt64);
  model @11 :Text;
  tensors @12 :List(TensorEntry);
  fileBytes @13 :UInt64;
}
