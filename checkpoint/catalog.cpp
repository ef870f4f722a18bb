// catalog.cpp: the checkpoint catalog on RocksDB (see catalog.hpp).
//
// Keys: checkpoints = step (8 bytes big-endian); shards = step (8 BE) | rank (4 BE);
// events = seq (8 BE); meta = "run_id", "next_event_seq", "pending_delete/" + step (8 BE),
// "inflight_save/" + step (8 BE), "left_alone/" + dir, and the k_meta_* names.
// Values: version byte 1, then fixed fields: integers little-endian, strings as a u32
// length and the bytes. A checkpoint's shards live only in "shards", never in its record.
#include "checkpoint/catalog.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "checkpoint/fault_hook.hpp"
#include "checkpoint/file_io.hpp"
#include "config/error.hpp"

namespace lz::checkpoint {

namespace {

constexpr uint8_t k_value_version = 1;
constexpr uint64_t k_min_free_bytes = 8u << 20;  // for opening or writing the catalog
constexpr std::string_view k_pending_prefix = "pending_delete/";
constexpr std::string_view k_inflight_prefix = "inflight_save/";
constexpr std::string_view k_left_alone_prefix = "left_alone/";
const char* const k_cf_names[] = {"default", "checkpoints", "shards", "events", "meta"};

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_be(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string step_key(int64_t step) {
  std::string k;
  put_be(k, static_cast<uint64_t>(step), 8);
  return k;
}

std::string shard_key(int64_t step, int32_t rank) {
  std::string k = step_key(step);
  put_be(k, static_cast<uint32_t>(rank), 4);
  return k;
}

std::string pending_key(int64_t step) { return std::string(k_pending_prefix) + step_key(step); }
std::string inflight_key(int64_t step) { return std::string(k_inflight_prefix) + step_key(step); }

// RocksDB's own info log would write files into the catalog on every open (read-only ones
// too); its errors reach us as Status values instead.
class silent_logger : public rocksdb::Logger {
public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

// Appends fields after the version byte.
class value_writer {
public:
  value_writer() { out_.push_back(static_cast<char>(k_value_version)); }
  value_writer& u8(uint8_t v) { out_.push_back(static_cast<char>(v)); return *this; }
  value_writer& u64(uint64_t v) { return le_(v, 8); }
  value_writer& i64(int64_t v) { return le_(static_cast<uint64_t>(v), 8); }
  value_writer& i32(int32_t v) { return le_(static_cast<uint32_t>(v), 4); }
  value_writer& str(std::string_view s) {
    le_(s.size(), 4);
    out_.append(s);
    return *this;
  }
  const std::string& bytes() const { return out_; }

private:
  value_writer& le_(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string out_;
};

// Reads fields back; anything malformed is a format_error naming `where` (database and key).
class value_reader {
public:
  value_reader(const rocksdb::Slice& value, std::string where)
    : p_(value.data()), left_(value.size()), where_(std::move(where)) {
    const uint8_t version = u8();
    if (version != k_value_version) {
      fail(fmt::format("value format version {} is not {} (written by a newer Lazarus?)",
                       version, k_value_version));
    }
  }
  uint8_t u8() { return static_cast<uint8_t>(le_(1)); }
  bool flag() {
    const uint8_t v = u8();
    if (v > 1) fail(fmt::format("flag byte {} is not 0 or 1", v));
    return v == 1;
  }
  uint64_t u64() { return le_(8); }
  int64_t i64() { return static_cast<int64_t>(le_(8)); }
  int32_t i32() { return static_cast<int32_t>(static_cast<uint32_t>(le_(4))); }
  std::string str() {
    const size_t n = le_(4);
    need_(n);
    std::string s(p_, n);
    p_ += n;
    left_ -= n;
    return s;
  }
  void finish() {
    if (left_ != 0) fail(fmt::format("{} unexpected trailing bytes", left_));
  }
  [[noreturn]] void fail(const std::string& why) const {
    LZ_THROW(format_error, "malformed catalog record at {}: {}; the catalog database is damaged",
             where_, why);
  }

private:
  void need_(size_t n) const {
    if (n > left_) fail(fmt::format("needs {} more bytes but only {} are left", n, left_));
  }
  uint64_t le_(int n) {
    need_(static_cast<size_t>(n));
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(p_[i])} << (8 * i);
    p_ += n;
    left_ -= static_cast<size_t>(n);
    return v;
  }
  const char* p_;
  size_t left_;
  std::string where_;
};

std::string encode_checkpoint(const checkpoint_record& r) {
  value_writer w;
  w.i64(r.step).i64(r.generation).i32(r.world_size).i64(r.created_unix_ms).u64(r.total_bytes);
  w.str(r.dir).u8(r.status == checkpoint_status::corrupt ? 1 : 0).u8(r.verified ? 1 : 0);
  w.str(r.note);
  return w.bytes();
}

std::string encode_shard(const shard_record& s) {
  value_writer w;
  w.i32(s.rank).str(s.file).u64(s.bytes).u64(s.header_xxh3).i64(s.range.begin).i64(s.range.end);
  return w.bytes();
}

int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct catalog::impl {
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // in k_cf_names order
  rocksdb::ColumnFamilyHandle* checkpoints_ = nullptr;
  rocksdb::ColumnFamilyHandle* shards_ = nullptr;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  std::mutex event_mutex_;
  int64_t next_event_seq_ = 1;

  void check(const rocksdb::Status& s, std::string_view op) const {
    if (!s.ok()) LZ_THROW(io_error, "catalog {}: {} failed: {}", path_, op, s.ToString());
  }

  // Synced to the write-ahead log, then flushed into table files, so that a record never
  // lives only in the log: a deleted log then loses nothing, and a deleted table file is
  // an error at open (the MANIFEST lists it), never a silently emptier catalog.
  void write_synced(rocksdb::WriteBatch& batch, std::string_view op) {
    require_free_space(path_, k_min_free_bytes, "a catalog write");
    rocksdb::WriteOptions options;
    options.sync = true;
    check(db_->Write(options, &batch), op);
    rocksdb::FlushOptions flush;
    flush.wait = true;
    check(db_->Flush(flush, handles_), op);
  }

  std::optional<std::string> read(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                                  std::string_view op) const {
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf, key, &value);
    if (s.IsNotFound()) return std::nullopt;
    check(s, op);
    return value;
  }

  std::unique_ptr<rocksdb::Iterator> iterate(rocksdb::ColumnFamilyHandle* cf) const {
    return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(rocksdb::ReadOptions(), cf));
  }

  // Calls f(key, value) for every key of `cf` that starts with `prefix`, in key order.
  template <class F>
  void scan(rocksdb::ColumnFamilyHandle* cf, std::string_view prefix, std::string_view op,
            F&& f) const {
    auto it = iterate(cf);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      f(it->key(), it->value());
    }
    check(it->status(), op);
  }

  checkpoint_record decode_checkpoint(const rocksdb::Slice& key,
                                      const rocksdb::Slice& value) const {
    if (key.size() != 8) {
      LZ_THROW(format_error, "malformed catalog key in {} column family 'checkpoints': {} bytes, "
               "not 8; the catalog database is damaged", path_, key.size());
    }
    const auto step = static_cast<int64_t>(get_be(key.data(), 8));
    value_reader r(value, fmt::format("{} column family 'checkpoints' key step {}", path_, step));
    checkpoint_record c;
    c.step = r.i64();
    c.generation = r.i64();
    c.world_size = r.i32();
    c.created_unix_ms = r.i64();
    c.total_bytes = r.u64();
    c.dir = r.str();
    c.status = r.flag() ? checkpoint_status::corrupt : checkpoint_status::committed;
    c.verified = r.flag();
    c.note = r.str();
    r.finish();
    if (c.step != step) r.fail(fmt::format("it says step {}", c.step));
    return c;
  }

  // Every shard key of `step`, ascending by rank.
  template <class F>
  void for_each_shard_key(int64_t step, F&& f) const {
    scan(shards_, step_key(step), fmt::format("reading the shards of step {}", step), f);
  }

  std::vector<shard_record> load_shards(int64_t step) const {
    std::vector<shard_record> shards;
    for_each_shard_key(step, [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
      const uint64_t rank = key.size() == 12 ? get_be(key.data() + 8, 4) : 0;
      value_reader r(value, fmt::format("{} column family 'shards' key step {} rank {}", path_,
                                        step, rank));
      if (key.size() != 12) r.fail(fmt::format("key is {} bytes, not 12", key.size()));
      shard_record s;
      s.rank = r.i32();
      s.file = r.str();
      s.bytes = r.u64();
      s.header_xxh3 = r.u64();
      s.range.begin = r.i64();
      s.range.end = r.i64();
      r.finish();
      if (static_cast<uint64_t>(s.rank) != rank) r.fail(fmt::format("it says rank {}", s.rank));
      shards.push_back(std::move(s));
    });
    return shards;
  }

  checkpoint_record full_record(const rocksdb::Slice& key, const rocksdb::Slice& value) const {
    checkpoint_record c = decode_checkpoint(key, value);
    c.shards = load_shards(c.step);
    return c;
  }

  std::optional<checkpoint_record> get(int64_t step) const {
    const std::string key = step_key(step);
    const auto value = read(checkpoints_, key, fmt::format("reading checkpoint {}", step));
    if (!value) return std::nullopt;
    return full_record(key, *value);
  }

  void put_record(const checkpoint_record& c, std::string_view op) {
    rocksdb::WriteBatch batch;
    check(batch.Put(checkpoints_, step_key(c.step), encode_checkpoint(c)), op);
    write_synced(batch, op);
  }

  // "meta" values that are one string.
  std::optional<std::string> read_meta(const std::string& key) const {
    const auto v = read(meta_, key, "reading " + key);
    if (!v) return std::nullopt;
    value_reader r(*v, path_ + " column family 'meta' key " + rocksdb::Slice(key).ToString(true));
    std::string text = r.str();
    r.finish();
    return text;
  }
  void put_meta(const std::string& key, const std::string& text, std::string_view op) {
    value_writer w;
    w.str(text);
    rocksdb::WriteBatch batch;
    check(batch.Put(meta_, key, w.bytes()), op);
    write_synced(batch, op);
  }
  void delete_meta(const std::string& key, std::string_view op) {
    rocksdb::WriteBatch batch;
    check(batch.Delete(meta_, key), op);
    write_synced(batch, op);
  }

  checkpoint_record must_get(int64_t step, std::string_view op) const {
    auto c = get(step);
    if (!c) LZ_THROW(io_error, "catalog {}: {}: there is no checkpoint at step {}", path_, op,
                     step);
    return std::move(*c);
  }

  int64_t load_next_event_seq() const {
    int64_t next = 1;
    if (const auto v = read(meta_, "next_event_seq", "reading next_event_seq")) {
      value_reader r(*v, path_ + " column family 'meta' key next_event_seq");
      next = r.i64();
      r.finish();
    }
    auto it = iterate(events_);  // never reuse a sequence number, even if meta lagged
    it->SeekToLast();
    if (it->Valid() && it->key().size() == 8) {
      next = std::max(next, static_cast<int64_t>(get_be(it->key().data(), 8)) + 1);
    }
    check(it->status(), "reading the last event");
    return next;
  }
};

catalog::catalog(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

catalog::~catalog() {
  for (rocksdb::ColumnFamilyHandle* h : impl_->handles_) {
    const rocksdb::Status s = impl_->db_->DestroyColumnFamilyHandle(h);
    if (!s.ok()) std::fprintf(stderr, "lazarus: catalog %s: closing a column family: %s\n",
                              impl_->path_.c_str(), s.ToString().c_str());
  }
  const rocksdb::Status s = impl_->db_->Close();
  if (!s.ok()) std::fprintf(stderr, "lazarus: catalog %s: close: %s\n", impl_->path_.c_str(),
                            s.ToString().c_str());
}

namespace {

namespace fs = std::filesystem;

std::string catalog_path(const std::string& state_dir) {
  return (fs::path(state_dir) / "catalog").string();
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// What a failed DB::Open means for the user, and what to do about it.
[[noreturn]] void throw_open_failure(const rocksdb::Status& s, const std::string& path,
                                     const std::string& state_dir, catalog_access access) {
  const std::string text = s.ToString();
  if (contains(text, "Read-only file system") || contains(text, "Permission denied")) {
    LZ_THROW(io_error, "cannot open the catalog {} for writing: the state dir is read-only or "
             "not ours ({}); `lazarus ckpt ls|verify|inspect|events` read it as it is, and "
             "training needs a writable --state-dir", path, text);
  }
  if (s.IsIOError() && contains(text, "/LOCK")) {  // held by another process
    LZ_THROW(io_error, "another process holds {} (its LOCK is taken, or this process opened "
             "it twice): stop the other Lazarus process using state dir '{}' or choose "
             "another state dir ({})", path, state_dir, text);
  }
  if (contains(text, "No space left on device")) {
    LZ_THROW(io_error, "cannot open the catalog {}: the disk is full ({}); free space on that "
             "disk and retry: nothing was changed", path, text);
  }
  if (s.IsCorruption() || s.IsNotFound() || contains(text, "No such file") ||
      contains(text, "does not exist")) {
    LZ_THROW(io_error, "the checkpoint catalog {} is damaged: {}. Nothing was changed. "
             "`lazarus ckpt rebuild-catalog {}` rebuilds it from the shard files (it keeps "
             "the damaged catalog beside the new one)", path, text, state_dir);
  }
  LZ_THROW(io_error, "cannot open the checkpoint catalog {}{}: {}; nothing was changed", path,
           access == catalog_access::read_only ? " (read-only)" : "", text);
}

}  // namespace

bool catalog::exists(const std::string& state_dir) {
  std::error_code ec;
  return fs::exists(catalog_path(state_dir), ec);
}

std::unique_ptr<catalog> catalog::open(const std::string& state_dir, catalog_access access) {
  return open_at(catalog_path(state_dir), state_dir, access, false);
}

std::unique_ptr<catalog> catalog::open_at(const std::string& path, const std::string& state_dir,
                                          catalog_access access, bool create) {
  auto p = std::make_unique<impl>();
  p->path_ = path;
  std::error_code ec;
  if (!create) {
    if (!fs::exists(path, ec)) {
      LZ_THROW(io_error, "'{}' has no checkpoint catalog ({} does not exist): is it the "
               "--state-dir of a run?", state_dir, path);
    }
    if (!fs::exists(fs::path(path) / "CURRENT", ec)) {
      LZ_THROW(io_error, "the checkpoint catalog {} is damaged: its file CURRENT is missing. "
               "Nothing was changed. `lazarus ckpt rebuild-catalog {}` rebuilds it from the "
               "shard files (it keeps the damaged catalog beside the new one)", path, state_dir);
    }
  }
  rocksdb::DBOptions options;  // a small metadata database: modest buffers, few logs
  options.create_if_missing = create;
  options.error_if_exists = create;
  options.create_missing_column_families = create;
  options.max_background_jobs = 1;
  options.keep_log_file_num = 2;
  options.max_total_wal_size = 8 << 20;
  options.info_log = std::make_shared<silent_logger>();
  // A write-ahead log that went missing is an error at open, not an empty catalog.
  options.track_and_verify_wals_in_manifest = true;
  options.atomic_flush = true;  // the column families of one batch reach the tables together
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = 1 << 20;
  cf_options.max_write_buffer_number = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : k_cf_names) descriptors.emplace_back(name, cf_options);
  if (access == catalog_access::read_write) {
    require_free_space(create ? state_dir : path, k_min_free_bytes, "opening the catalog");
  }
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s =
      access == catalog_access::read_only
          ? rocksdb::DB::OpenForReadOnly(options, path, descriptors, &p->handles_, &db)
          : rocksdb::DB::Open(options, path, descriptors, &p->handles_, &db);
  if (!s.ok()) throw_open_failure(s, path, state_dir, access);
  p->db_.reset(db);
  p->checkpoints_ = p->handles_[1];
  p->shards_ = p->handles_[2];
  p->events_ = p->handles_[3];
  p->meta_ = p->handles_[4];
  auto c = std::unique_ptr<catalog>(new catalog(std::move(p)));  // closes the DB if we throw
  c->impl_->next_event_seq_ = c->impl_->load_next_event_seq();
  if (!create && !c->run_id()) {
    LZ_THROW(io_error, "the checkpoint catalog {} is damaged: it holds no run id, so its "
             "records were lost (a deleted write-ahead log?). Nothing was changed. "
             "`lazarus ckpt rebuild-catalog {}` rebuilds it from the shard files (it keeps "
             "the damaged catalog beside the new one)", path, state_dir);
  }
  return c;
}

std::unique_ptr<catalog> catalog::create(const std::string& state_dir, const std::string& run_id,
                                         const std::function<void(catalog&)>& fill,
                                         const std::function<void()>& before_rename) {
  const std::string path = catalog_path(state_dir);
  const std::string building = path + ".creating";  // never a catalog: a creation cut short
  std::error_code ec;
  if (!before_rename && fs::exists(path, ec)) {  // else before_rename makes room for it
    LZ_THROW(io_error, "refusing to create a checkpoint catalog in '{}': {} exists; a catalog "
             "is never created over another one", state_dir, path);
  }
  fs::create_directories(state_dir, ec);
  if (ec) {
    LZ_THROW(io_error, "cannot create state dir '{}': {}; check the path and its permissions",
             state_dir, ec.message());
  }
  // One creator at a time: the lock goes with the process, so a killed creator leaves a
  // catalog.creating that the next one may remove.
  const std::string lock_path = path + ".creating.lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    LZ_THROW(io_error, "cannot create '{}': {}; check that the state dir is writable", lock_path,
             std::strerror(errno));
  }
  struct lock_guard {
    int fd;
    ~lock_guard() { ::close(fd); }
  } guard{lock_fd};
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    LZ_THROW(io_error, "another process is creating the checkpoint catalog of '{}': two runs "
             "cannot start in one state dir at once", state_dir);
  }
  fs::remove_all(building, ec);
  if (ec) LZ_THROW(io_error, "cannot remove '{}': {}", building, ec.message());
  {
    auto fresh = open_at(building, state_dir, catalog_access::read_write, true);
    fresh->impl_->put_meta("run_id", run_id, "recording the run id");
    if (fill) fill(*fresh);
  }
  if (before_rename) before_rename();
  if (fs::exists(path, ec)) {
    LZ_THROW(io_error, "refusing to create a checkpoint catalog in '{}': {} appeared while it "
             "was being built; a catalog is never created over another one", state_dir, path);
  }
  fs::rename(building, path, ec);
  if (ec) LZ_THROW(io_error, "cannot rename '{}' to '{}': {}", building, path, ec.message());
  fsync_directory(state_dir);
  return open(state_dir);
}

void catalog::commit(const checkpoint_record& record) {
  LZ_CHECK(record.step >= 0, "step {}", record.step);
  const std::string op = fmt::format("commit of checkpoint {}", record.step);
  rocksdb::WriteBatch batch;
  impl_->for_each_shard_key(record.step, [&](const rocksdb::Slice& key, const rocksdb::Slice&) {
    impl_->check(batch.Delete(impl_->shards_, key), op);  // stale shards of an earlier commit
  });
  impl_->check(batch.Put(impl_->checkpoints_, step_key(record.step), encode_checkpoint(record)),
               op);
  for (const shard_record& s : record.shards) {
    LZ_CHECK(s.rank >= 0, "shard rank {} of step {}", s.rank, record.step);
    impl_->check(batch.Put(impl_->shards_, shard_key(record.step, s.rank), encode_shard(s)), op);
  }
  impl_->check(batch.Delete(impl_->meta_, inflight_key(record.step)), op);
  fault_point("catalog.before_commit", record.step);
  impl_->write_synced(batch, op);
  fault_point("catalog.after_commit", record.step);
}

std::optional<checkpoint_record> catalog::latest() const {
  auto it = impl_->iterate(impl_->checkpoints_);
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    checkpoint_record c = impl_->decode_checkpoint(it->key(), it->value());
    if (c.status != checkpoint_status::committed) continue;
    c.shards = impl_->load_shards(c.step);
    return c;
  }
  impl_->check(it->status(), "finding the latest checkpoint");
  return std::nullopt;
}

std::optional<checkpoint_record> catalog::get(int64_t step) const {
  if (step < 0) return std::nullopt;
  return impl_->get(step);
}

std::vector<checkpoint_record> catalog::list() const {
  std::vector<checkpoint_record> out;
  impl_->scan(impl_->checkpoints_, "", "listing checkpoints",
              [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
                out.push_back(impl_->full_record(key, value));
              });
  return out;
}

void catalog::mark_verified(int64_t step) {
  const std::string op = fmt::format("mark_verified of checkpoint {}", step);
  checkpoint_record c = impl_->must_get(step, op);
  c.verified = true;
  c.status = checkpoint_status::committed;
  c.note.clear();
  impl_->put_record(c, op);
}

void catalog::mark_corrupt(int64_t step, const std::string& reason) {
  const std::string op = fmt::format("mark_corrupt of checkpoint {}", step);
  checkpoint_record c = impl_->must_get(step, op);
  c.status = checkpoint_status::corrupt;
  c.verified = false;
  c.note = reason;
  impl_->put_record(c, op);
}

int64_t catalog::append_event(const std::string& kind, const std::string& json) {
  return append_event_at(now_unix_ms(), kind, json);
}

int64_t catalog::append_event_at(int64_t unix_ms, const std::string& kind,
                                 const std::string& json) {
  std::lock_guard<std::mutex> lock(impl_->event_mutex_);
  const int64_t seq = impl_->next_event_seq_;
  const std::string op = fmt::format("append of event {} ({})", seq, kind);
  value_writer event;
  event.i64(unix_ms).str(kind).str(json);
  value_writer next;
  next.i64(seq + 1);
  rocksdb::WriteBatch batch;
  impl_->check(batch.Put(impl_->events_, step_key(seq), event.bytes()), op);
  impl_->check(batch.Put(impl_->meta_, "next_event_seq", next.bytes()), op);
  impl_->write_synced(batch, op);
  impl_->next_event_seq_ = seq + 1;
  return seq;
}

std::vector<event_record> catalog::events() const {
  std::vector<event_record> out;
  impl_->scan(impl_->events_, "", "listing events",
              [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
    const uint64_t seq = key.size() == 8 ? get_be(key.data(), 8) : 0;
    value_reader r(value, fmt::format("{} column family 'events' key seq {}", impl_->path_, seq));
    if (key.size() != 8) r.fail(fmt::format("key is {} bytes, not 8", key.size()));
    event_record e;
    e.seq = static_cast<int64_t>(seq);
    e.unix_ms = r.i64();
    e.kind = r.str();
    e.json = r.str();
    r.finish();
    out.push_back(std::move(e));
  });
  return out;
}

void catalog::begin_delete(int64_t step) {
  LZ_CHECK(step >= 0, "step {}", step);
  const std::string op = fmt::format("begin_delete of checkpoint {}", step);
  rocksdb::WriteBatch batch;
  impl_->check(batch.Delete(impl_->checkpoints_, step_key(step)), op);
  impl_->for_each_shard_key(step, [&](const rocksdb::Slice& key, const rocksdb::Slice&) {
    impl_->check(batch.Delete(impl_->shards_, key), op);
  });
  value_writer pending;
  pending.i64(step);
  impl_->check(batch.Put(impl_->meta_, pending_key(step), pending.bytes()), op);
  impl_->write_synced(batch, op);
  fault_point("catalog.after_begin_delete", step);
}

void catalog::finish_delete(int64_t step) {
  LZ_CHECK(step >= 0, "step {}", step);
  impl_->delete_meta(pending_key(step), fmt::format("finish_delete of checkpoint {}", step));
}

std::vector<int64_t> catalog::pending_deletes() const {
  std::vector<int64_t> out;
  impl_->scan(impl_->meta_, k_pending_prefix, "listing pending deletions",
              [&](const rocksdb::Slice& key, const rocksdb::Slice&) {
    if (key.size() != k_pending_prefix.size() + 8) {
      LZ_THROW(format_error, "malformed catalog key in {} column family 'meta': '{}' is not "
               "pending_delete/ and 8 bytes; the catalog database is damaged", impl_->path_,
               key.ToString(true));
    }
    out.push_back(static_cast<int64_t>(get_be(key.data() + k_pending_prefix.size(), 8)));
  });
  return out;
}

std::optional<std::string> catalog::run_id() const { return impl_->read_meta("run_id"); }

std::optional<std::string> catalog::meta(std::string_view name) const {
  return impl_->read_meta(std::string(name));
}

void catalog::set_meta(std::string_view name, const std::string& value) {
  LZ_CHECK(name != "run_id" && name != "next_event_seq", "meta name {}", name);
  impl_->put_meta(std::string(name), value, fmt::format("set_meta of {}", name));
}

const std::string& catalog::path() const { return impl_->path_; }

void catalog::begin_save(int64_t step, const std::string& dir) {
  LZ_CHECK(step >= 0, "step {}", step);
  impl_->put_meta(inflight_key(step), dir, fmt::format("begin_save of checkpoint {}", step));
}

void catalog::abort_save(int64_t step) {
  impl_->delete_meta(inflight_key(step), fmt::format("abort_save of checkpoint {}", step));
}

std::vector<inflight_save> catalog::inflight_saves() const {
  std::vector<inflight_save> out;
  impl_->scan(impl_->meta_, k_inflight_prefix, "listing saves in flight",
              [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
    const std::string where = impl_->path_ + " column family 'meta' key " + key.ToString(true);
    value_reader r(value, where);
    if (key.size() != k_inflight_prefix.size() + 8) r.fail("the key is not inflight_save/ and 8 bytes");
    inflight_save save;
    save.step = static_cast<int64_t>(get_be(key.data() + k_inflight_prefix.size(), 8));
    save.dir = r.str();
    r.finish();
    out.push_back(std::move(save));
  });
  return out;
}

void catalog::leave_alone(const std::string& dir, const std::string& reason) {
  impl_->put_meta(std::string(k_left_alone_prefix) + dir, reason,
                  fmt::format("leave_alone of {}", dir));
}

std::vector<std::pair<std::string, std::string>> catalog::left_alone() const {
  std::vector<std::pair<std::string, std::string>> out;
  impl_->scan(impl_->meta_, k_left_alone_prefix, "listing directories left alone",
              [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
    value_reader r(value, impl_->path_ + " column family 'meta' key " + key.ToString());
    std::string reason = r.str();
    r.finish();
    out.emplace_back(key.ToString().substr(k_left_alone_prefix.size()), std::move(reason));
  });
  return out;
}

}  // namespace lz::checkpoint
