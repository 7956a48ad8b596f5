#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "nibble/core/error.h"
#include "nibble/model/safetensors.h"

namespace nibble {
namespace {

// Closes the descriptor on every path out of the constructor.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_text() { return std::strerror(errno); }

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path, bool use_mmap) : path_(path) {
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) throw Error("cannot open " + path.string() + ": " + errno_text());
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) throw Error("cannot stat " + path.string() + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) throw Error(path.string() + " is not a regular file");
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;

  if (use_mmap) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd, 0);
    if (p == MAP_FAILED) throw Error("cannot map " + path.string() + ": " + errno_text());
    mapping_ = p;
    data_ = static_cast<const std::byte*>(p);
    return;
  }
  buffer_.resize(size_);
  size_t done = 0;
  while (done < size_) {
    ssize_t n = ::read(file.fd, buffer_.data() + done, size_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot read " + path.string() + ": " + errno_text());
    if (n == 0) break;  // shrank while reading
    done += static_cast<size_t>(n);
  }
  buffer_.resize(done);
  size_ = done;
  data_ = buffer_.data();
}

MappedFile::~MappedFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

}  // namespace nibble
